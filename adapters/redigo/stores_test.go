package redigo_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/ports"
)

// secretToken is a token whose text must never show in an error.
var secretToken = ports.CachedToken{
	AccessToken: "SECRET-eyJhbGciOiJSUzI1NiJ9.genesys-access-token",
	ExpiresAt:   time.UnixMilli(1_900_000_000_000),
}

func TestTokenStoreContract(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		contract.TokenStore(t, func(t *testing.T) ports.TokenStore {
			return redigo.NewTokenStore(sharedClient(t, tr))
		})
	})
}

func TestTokenLockContract(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		contract.TokenLock(t, func(t *testing.T) ports.TokenLock {
			return redigo.NewTokenStore(sharedClient(t, tr))
		})
	})
}

func TestDedupeStoreContract(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		contract.DedupeStore(t, func(t *testing.T) ports.DedupeStore {
			o := options(redistest.SharedURL(t), tr)
			o.MaxIdle = 32 // the suite races hundreds of claims (on the pool)
			return redigo.NewDedupeStore(newClient(t, o))
		})
	})
}

func TestKeyLayout(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{name: "token", give: redigo.TokenKey("tenant-42"), want: "genesys:token:tenant-42"},
		{name: "dedupe", give: redigo.DedupeKey("tenant-42", "wamid.HBgL=="), want: "genesys:dedupe:tenant-42:wamid.HBgL=="},
		{name: "dedupe, message id with a colon", give: redigo.DedupeKey("t", "a:b"), want: "genesys:dedupe:t:a:b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.give != tt.want {
				t.Errorf("key = %q, want %q", tt.give, tt.want)
			}
		})
	}
}

// TestTokenKeysInNamespaceWithTTL checks the token's key and TTL: the token
// lands at genesys:token:<tenantId> with the TTL it was given.
func TestTokenKeysInNamespaceWithTTL(t *testing.T) {
	tests := []struct {
		name string
		give time.Duration
	}{
		{name: "an hour less the refresh margin", give: 3300 * time.Second},
		{name: "two days less the refresh margin", give: 172500 * time.Second},
		{name: "half of a short lifetime", give: 150500 * time.Millisecond},
	}
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, raw, tenant := redigo.NewTokenStore(sharedClient(t, tr)), rawConn(t), contract.TenantID(t)
				key := "genesys:token:" + tenant
				if err := s.PutToken(t.Context(), tenant, secretToken, tt.give); err != nil {
					t.Fatalf("PutToken: %v", err)
				}
				if !exists(t, raw, key) {
					t.Fatalf("no key %s after PutToken", key)
				}
				checkTTL(t, raw, key, tt.give)
				if err := s.DeleteToken(t.Context(), tenant); err != nil {
					t.Fatal(err)
				}
				if exists(t, raw, key) {
					t.Errorf("key %s exists after DeleteToken", key)
				}
			})
		}
	})
}

// TestDedupeKeysInNamespaceWithTTLs checks the dedupe keys and TTLs: a claim holds
// genesys:dedupe:<tenantId>:<messageId> for the claim TTL, a commit for the
// dedupe TTL, and a release removes it.
func TestDedupeKeysInNamespaceWithTTLs(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		const claimTTL, dedupeTTL = 5 * time.Minute, 86400 * time.Second
		s, raw, tenant := redigo.NewDedupeStore(sharedClient(t, tr)), rawConn(t), contract.TenantID(t)
		const committed, released = "wamid.committed", "wamid.released"

		for _, msg := range []string{committed, released} {
			if st, err := s.Claim(t.Context(), tenant, msg, "owner", claimTTL); err != nil || st != ports.ClaimAcquired {
				t.Fatalf("Claim(%s) = %d, %v; want ClaimAcquired", msg, st, err)
			}
			key := "genesys:dedupe:" + tenant + ":" + msg
			if !exists(t, raw, key) {
				t.Fatalf("no key %s after Claim", key)
			}
			checkTTL(t, raw, key, claimTTL)
		}

		if owned, err := s.Commit(t.Context(), tenant, committed, "owner", dedupeTTL); err != nil || !owned {
			t.Fatalf("Commit = %v, %v; want owned", owned, err)
		}
		checkTTL(t, raw, "genesys:dedupe:"+tenant+":"+committed, dedupeTTL)

		if owned, err := s.Release(t.Context(), tenant, released, "owner"); err != nil || !owned {
			t.Fatalf("Release = %v, %v; want owned", owned, err)
		}
		if key := "genesys:dedupe:" + tenant + ":" + released; exists(t, raw, key) {
			t.Errorf("key %s exists after Release", key)
		}
	})
}

func TestDedupeSubMillisecondCommitTTLIsRejected(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		s, raw, tenant := redigo.NewDedupeStore(sharedClient(t, tr)), rawConn(t), contract.TenantID(t)
		if _, err := s.Claim(t.Context(), tenant, "msg", "owner", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(t.Context(), tenant, "msg", "owner", 0); err == nil {
			t.Error("Commit with ttl 0: no error")
		}
		checkTTL(t, raw, redigo.DedupeKey(tenant, "msg"), time.Minute)
	})
}

// TestTokenIsStoredAsJSONOfTokenAndExpiry checks that the stored value holds
// the token and its expiry, and nothing else (no tenant, no secret of the
// client's own).
func TestTokenIsStoredAsJSONOfTokenAndExpiry(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		s, raw, tenant := redigo.NewTokenStore(sharedClient(t, tr)), rawConn(t), contract.TenantID(t)
		if err := s.PutToken(t.Context(), tenant, secretToken, time.Hour); err != nil {
			t.Fatal(err)
		}
		val, err := redis.Bytes(raw.Do("GET", redigo.TokenKey(tenant)))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(val, &got); err != nil {
			t.Fatalf("stored value is not a JSON object: %v", err)
		}
		want := map[string]any{
			"access_token": secretToken.AccessToken,
			"expires_at":   float64(secretToken.ExpiresAt.UnixMilli()),
		}
		if len(got) != len(want) {
			t.Errorf("stored value has fields %v, want exactly access_token and expires_at", keys(got))
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("stored %s = %v, want %v", k, got[k], w)
			}
		}
	})
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestMalformedStoredTokenIsAnErrorWithoutTheValue checks that a value under
// a token key that is not a token is reported, and that the report does not
// echo the value, which may hold a token.
func TestMalformedStoredTokenIsAnErrorWithoutTheValue(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{name: "not JSON", give: "SECRET-raw-token-not-json"},
		{name: "truncated JSON", give: `{"access_token":"SECRET-truncated`},
		{name: "JSON array", give: `["SECRET-in-an-array"]`},
		{name: "JSON string", give: `"SECRET-bare-string"`},
		{name: "empty token", give: `{"access_token":"","expires_at":1900000000000}`},
		{name: "no token field", give: `{"token":"SECRET-other-field","expires_at":1900000000000}`},
		{name: "token of the wrong type", give: `{"access_token":12345,"expires_at":1900000000000}`},
		{name: "expiry of the wrong type", give: `{"access_token":"SECRET-bad-expiry","expires_at":"tomorrow"}`},
	}
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, raw, tenant := redigo.NewTokenStore(sharedClient(t, tr)), rawConn(t), contract.TenantID(t)
				if _, err := raw.Do("SET", redigo.TokenKey(tenant), tt.give, "EX", 60); err != nil {
					t.Fatal(err)
				}
				tok, found, err := s.GetToken(t.Context(), tenant)
				if err == nil {
					t.Fatalf("GetToken of %s = %+v, found %v; want an error", tt.give, tok, found)
				}
				if found || tok != (ports.CachedToken{}) {
					t.Errorf("GetToken of a malformed value = %+v, found %v; want nothing", tok, found)
				}
				if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), tt.give) {
					t.Errorf("error %q echoes the stored value", err)
				}
			})
		}
	})
}

// TestErrorsQuoteTheKey: a message id may hold format characters that
// reorder the text around them (U+202E) and still be valid; an error
// about its key, here the WRONGTYPE answer to a claim of a key that holds a
// list, quotes the key, so that it reads as it is wherever it is logged.
func TestErrorsQuoteTheKey(t *testing.T) {
	const messageID = "wamid.\u202eABC"
	forEachTransport(t, func(t *testing.T, tr transport) {
		s, raw, tenant := redigo.NewDedupeStore(sharedClient(t, tr)), rawConn(t), contract.TenantID(t)
		key := redigo.DedupeKey(tenant, messageID)
		if _, err := raw.Do("RPUSH", key, "not a claim"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = raw.Do("DEL", key) })
		_, err := s.Claim(t.Context(), tenant, messageID, "owner-1", time.Minute)
		if err == nil || strings.ContainsRune(err.Error(), '\u202e') || !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
			t.Errorf("Claim of a key holding a list = %v, want an error quoting the key %q", err, key)
		}
	})
}

// TestClaimIsOneAtomicSetNXEX checks that a claim is atomic: it sends
// exactly one command for its key, a SET with NX and the claim TTL in
// seconds, as the server's MONITOR shows.
func TestClaimIsOneAtomicSetNXEX(t *testing.T) {
	srv := redistest.Start(t)
	forEachTransport(t, func(t *testing.T, tr transport) {
		s := redigo.NewDedupeStore(newClient(t, options(srv.URL(), tr)))
		tenant := contract.TenantID(t)
		key := redigo.DedupeKey(tenant, "wamid.once")

		mon, err := redis.Dial("tcp", srv.Addr(), redis.DialReadTimeout(testTimeout))
		if err != nil {
			t.Fatal(err)
		}
		defer mon.Close()
		if reply, err := redis.String(mon.Do("MONITOR")); err != nil || reply != "OK" {
			t.Fatalf("MONITOR = %q, %v", reply, err)
		}

		if st, err := s.Claim(t.Context(), tenant, "wamid.once", "owner", 5*time.Minute); err != nil || st != ports.ClaimAcquired {
			t.Fatalf("Claim = %d, %v; want ClaimAcquired", st, err)
		}
		sentinel := "end-of-test-" + tenant
		srv.Do(t, nil, "ECHO", sentinel)

		var lines []string
		for {
			line, err := redis.String(mon.Receive())
			if err != nil {
				t.Fatalf("reading MONITOR: %v", err)
			}
			if strings.Contains(line, sentinel) {
				break
			}
			if strings.Contains(line, key) {
				lines = append(lines, line)
			}
		}
		if len(lines) != 1 {
			t.Fatalf("commands for %s: %q, want exactly one SET", key, lines)
		}
		for _, want := range []string{`"SET" "` + key + `"`, `"NX"`, `"EX" "300"`} {
			if !strings.Contains(strings.ToUpper(lines[0]), strings.ToUpper(want)) {
				t.Errorf("claim command %s lacks %s", lines[0], want)
			}
		}
	})
}

// TestConcurrentClaimsAcquireOnce races hundreds of claims of one message:
// exactly one acquires it, on the pool each claim on a connection of its
// own, on the pipeline all in a few batches.
func TestConcurrentClaimsAcquireOnce(t *testing.T) {
	const claims = 500
	forEachTransport(t, func(t *testing.T, tr transport) {
		o := options(redistest.SharedURL(t), tr)
		o.MaxIdle = claims
		s := redigo.NewDedupeStore(newClient(t, o))
		tenant := contract.TenantID(t)

		var (
			start  = make(chan struct{})
			wg     sync.WaitGroup
			states = make([]ports.ClaimState, claims)
			errs   = make([]error, claims)
		)
		for i := range claims {
			wg.Go(func() {
				<-start
				states[i], errs[i] = s.Claim(t.Context(), tenant, "wamid.popular", fmt.Sprintf("owner-%d", i), 5*time.Minute)
			})
		}
		close(start)
		wg.Wait()

		counts := map[ports.ClaimState]int{}
		for i, st := range states {
			if errs[i] != nil {
				t.Fatalf("Claim %d: %v", i, errs[i])
			}
			counts[st]++
		}
		if counts[ports.ClaimAcquired] != 1 || counts[ports.ClaimHeld] != claims-1 {
			t.Errorf("%d concurrent claims: %v acquired, %v held, %v committed; want 1 acquired",
				claims, counts[ports.ClaimAcquired], counts[ports.ClaimHeld], counts[ports.ClaimCommitted])
		}
	})
}
