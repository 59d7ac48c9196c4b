package contract

import (
	"strings"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/ports"
)

// TokenStore runs the [ports.TokenStore] contract against stores made by
// newStore, which is called once per subtest.
func TokenStore(t *testing.T, newStore func(t *testing.T) ports.TokenStore) {
	t.Run("missing token is a miss, not an error", func(t *testing.T) {
		s := newStore(t)
		got, found, err := s.GetToken(t.Context(), TenantID(t))
		if err != nil || found {
			t.Fatalf("GetToken = found %v, err %v; want a miss without error", found, err)
		}
		if got != (ports.CachedToken{}) {
			t.Errorf("GetToken on a miss = %+v, want the zero token", got)
		}
	})

	t.Run("put then get round-trips the token and its expiry", func(t *testing.T) {
		tests := []struct {
			name string
			give ports.CachedToken
		}{
			{
				name: "whole milliseconds",
				give: ports.CachedToken{AccessToken: "tok-1", ExpiresAt: time.UnixMilli(time.Now().Add(time.Hour).UnixMilli())},
			},
			{
				name: "sub-millisecond expiry keeps its milliseconds",
				give: ports.CachedToken{AccessToken: "tok-2", ExpiresAt: time.Unix(1_900_000_000, 123_456_789)},
			},
			{
				name: "expiry read from the monotonic clock",
				give: ports.CachedToken{AccessToken: "tok-3", ExpiresAt: time.Now().Add(90 * time.Minute)},
			},
			{
				name: "token with quotes, backslashes, braces and unicode",
				give: ports.CachedToken{AccessToken: `a"b\c{}[]:,é✓` + "\t\n", ExpiresAt: time.UnixMilli(1_800_000_000_000)},
			},
			{
				name: "refresh point",
				give: ports.CachedToken{AccessToken: "tok-4", ExpiresAt: time.UnixMilli(1_800_000_000_000), RefreshAt: time.UnixMilli(1_799_999_700_000)},
			},
			{
				name: "long token",
				give: ports.CachedToken{AccessToken: strings.Repeat("x", 8192), ExpiresAt: time.UnixMilli(1_800_000_000_001)},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newStore(t)
				tenant := TenantID(t)
				putToken(t, s, tenant, tt.give, longTTL)
				got := mustGetToken(t, s, tenant)
				if got.AccessToken != tt.give.AccessToken {
					t.Errorf("AccessToken = %q, want %q", got.AccessToken, tt.give.AccessToken)
				}
				if d := got.ExpiresAt.Sub(tt.give.ExpiresAt).Abs(); d >= time.Millisecond {
					t.Errorf("ExpiresAt = %v, want %v to the millisecond", got.ExpiresAt, tt.give.ExpiresAt)
				}
				if got.RefreshAt.IsZero() != tt.give.RefreshAt.IsZero() || got.RefreshAt.Sub(tt.give.RefreshAt).Abs() >= time.Millisecond {
					t.Errorf("RefreshAt = %v, want %v to the millisecond", got.RefreshAt, tt.give.RefreshAt)
				}
			})
		}
	})

	t.Run("put overwrites", func(t *testing.T) {
		s := newStore(t)
		tenant := TenantID(t)
		first := ports.CachedToken{AccessToken: "first", ExpiresAt: time.UnixMilli(1_800_000_000_000)}
		second := ports.CachedToken{AccessToken: "second", ExpiresAt: time.UnixMilli(1_800_000_600_000)}
		putToken(t, s, tenant, first, longTTL)
		putToken(t, s, tenant, second, longTTL)
		if got := mustGetToken(t, s, tenant); got.AccessToken != second.AccessToken || !got.ExpiresAt.Equal(second.ExpiresAt) {
			t.Errorf("GetToken = %q expiring %v, want %q expiring %v", got.AccessToken, got.ExpiresAt, second.AccessToken, second.ExpiresAt)
		}
	})

	t.Run("put replaces the TTL", func(t *testing.T) {
		s := newStore(t)
		tenant := TenantID(t)
		putToken(t, s, tenant, token("long-lived"), longTTL)
		putToken(t, s, tenant, token("short-lived"), shortTTL)
		eventually(t, "token put again with a short TTL expires", func() bool {
			return !tokenFound(t, s, tenant)
		})
	})

	t.Run("delete removes the token", func(t *testing.T) {
		s := newStore(t)
		tenant := TenantID(t)
		putToken(t, s, tenant, token("doomed"), longTTL)
		if err := s.DeleteToken(t.Context(), tenant); err != nil {
			t.Fatalf("DeleteToken: %v", err)
		}
		if tokenFound(t, s, tenant) {
			t.Error("GetToken after DeleteToken found a token")
		}
	})

	t.Run("delete of a missing token is not an error", func(t *testing.T) {
		s := newStore(t)
		tenant := TenantID(t)
		if err := s.DeleteToken(t.Context(), tenant); err != nil {
			t.Errorf("DeleteToken of a missing token: %v", err)
		}
		putToken(t, s, tenant, token("once"), longTTL)
		for i := range 2 {
			if err := s.DeleteToken(t.Context(), tenant); err != nil {
				t.Errorf("DeleteToken #%d: %v", i+1, err)
			}
		}
	})

	t.Run("delete-if removes only the token named", func(t *testing.T) {
		s := newStore(t)
		tenant := TenantID(t)
		if deleted, err := s.DeleteTokenIf(t.Context(), tenant, "absent"); err != nil || deleted {
			t.Errorf("DeleteTokenIf of a missing token = %v, %v; want false, nil", deleted, err)
		}
		putToken(t, s, tenant, token("current"), longTTL)
		if deleted, err := s.DeleteTokenIf(t.Context(), tenant, "rejected"); err != nil || deleted {
			t.Errorf("DeleteTokenIf of another token = %v, %v; want false, nil", deleted, err)
		}
		if got := mustGetToken(t, s, tenant); got.AccessToken != "current" {
			t.Fatalf("after DeleteTokenIf of another token, GetToken = %q, want current", got.AccessToken)
		}
		if deleted, err := s.DeleteTokenIf(t.Context(), tenant, "current"); err != nil || !deleted {
			t.Errorf("DeleteTokenIf of the cached token = %v, %v; want true, nil", deleted, err)
		}
		if tokenFound(t, s, tenant) {
			t.Error("GetToken after DeleteTokenIf of the cached token found a token")
		}
	})

	t.Run("a pool slot's id is a key of its own", func(t *testing.T) {
		s := newStore(t)
		tenant := TenantID(t)
		slot := tenant + ":1"
		putToken(t, s, tenant, token("slot-0"), longTTL)
		putToken(t, s, slot, token("slot-1"), longTTL)
		if deleted, err := s.DeleteTokenIf(t.Context(), tenant, "slot-1"); err != nil || deleted {
			t.Errorf("DeleteTokenIf(%s, slot 1's token) = %v, %v; want false, nil", tenant, deleted, err)
		}
		if err := s.DeleteToken(t.Context(), slot); err != nil {
			t.Fatalf("DeleteToken(%s): %v", slot, err)
		}
		if got := mustGetToken(t, s, tenant); got.AccessToken != "slot-0" {
			t.Errorf("slot 0's token = %q after slot 1's was deleted, want slot-0", got.AccessToken)
		}
	})

	t.Run("a TTL under a millisecond is an error and stores nothing", func(t *testing.T) {
		s := newStore(t)
		tenant := TenantID(t)
		for _, ttl := range badTTLs {
			if err := s.PutToken(t.Context(), tenant, token("refused"), ttl); err == nil {
				t.Errorf("PutToken with ttl %v: no error", ttl)
			}
		}
		if tokenFound(t, s, tenant) {
			t.Error("GetToken after refused puts: found a token")
		}
	})

	t.Run("tenants are isolated", func(t *testing.T) {
		s := newStore(t)
		a := TenantID(t)
		ab := a + "b" // a's id is a prefix of ab's
		putToken(t, s, a, token("token-of-a"), longTTL)
		if tokenFound(t, s, ab) {
			t.Fatal("a token put for one tenant is found for another")
		}
		putToken(t, s, ab, token("token-of-ab"), longTTL)
		if got := mustGetToken(t, s, a); got.AccessToken != "token-of-a" {
			t.Errorf("tenant a's token = %q, want token-of-a", got.AccessToken)
		}
		if got := mustGetToken(t, s, ab); got.AccessToken != "token-of-ab" {
			t.Errorf("tenant ab's token = %q, want token-of-ab", got.AccessToken)
		}
		if err := s.DeleteToken(t.Context(), a); err != nil {
			t.Fatalf("DeleteToken: %v", err)
		}
		if got := mustGetToken(t, s, ab); got.AccessToken != "token-of-ab" {
			t.Errorf("after deleting tenant a's token, tenant ab's = %q, want token-of-ab", got.AccessToken)
		}
	})

	t.Run("token lives until its TTL, then expires", func(t *testing.T) {
		s := newStore(t)
		tenant := TenantID(t)
		start := time.Now()
		putToken(t, s, tenant, token("brief"), shortTTL)
		found := tokenFound(t, s, tenant)
		if !found && beforeTTL(start, shortTTL) {
			t.Fatalf("token missing before its %v TTL passed", shortTTL)
		}
		eventually(t, "token expires after its TTL", func() bool {
			return !tokenFound(t, s, tenant)
		})
	})
}

func token(access string) ports.CachedToken {
	return ports.CachedToken{AccessToken: access, ExpiresAt: time.UnixMilli(1_800_000_000_000)}
}

func putToken(t *testing.T, s ports.TokenStore, tenant string, tok ports.CachedToken, ttl time.Duration) {
	t.Helper()
	if err := s.PutToken(t.Context(), tenant, tok, ttl); err != nil {
		t.Fatalf("PutToken(%s, ttl %v): %v", tenant, ttl, err)
	}
}

func mustGetToken(t *testing.T, s ports.TokenStore, tenant string) ports.CachedToken {
	t.Helper()
	tok, found, err := s.GetToken(t.Context(), tenant)
	if err != nil {
		t.Fatalf("GetToken(%s): %v", tenant, err)
	}
	if !found {
		t.Fatalf("GetToken(%s): miss, want a token", tenant)
	}
	return tok
}

func tokenFound(t *testing.T, s ports.TokenStore, tenant string) bool {
	t.Helper()
	_, found, err := s.GetToken(t.Context(), tenant)
	if err != nil {
		t.Fatalf("GetToken(%s): %v", tenant, err)
	}
	return found
}
