package seal_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/adapters/seal"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/ports"
)

// testTimeout is the dial, read and write timeout of Redis clients:
// generous, since the machine running the tests may be loaded.
const testTimeout = 5 * time.Second

// missMessage is the message a value that does not open is logged with.
const missMessage = "cached token does not open; treated as a miss"

// testKey is a key as an operator would configure it.
type testKey struct {
	id  string
	b64 string // the key in standard, padded base64
	raw []byte
}

// newKey returns a fresh random key named id.
func newKey(t *testing.T, id string) testKey {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return testKey{id: id, b64: base64.StdEncoding.EncodeToString(raw), raw: raw}
}

func (k testKey) spec() string { return k.id + ":" + k.b64 }

// secrets are the forms of the key that must never be logged or returned.
func (k testKey) secrets() []string {
	return []string{k.b64, string(k.raw), hex.EncodeToString(k.raw), fmt.Sprint(k.raw)}
}

// keyring returns the keyring of keys, in order.
func keyring(t *testing.T, keys ...testKey) *seal.Keyring {
	t.Helper()
	specs := make([]string, len(keys))
	for i, k := range keys {
		specs[i] = k.spec()
	}
	ring, err := seal.ParseKeys(specs)
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	return ring
}

// keyName is the key name the tests seal tokens under.
func keyName(tenantID string) string { return "test:token:" + tenantID }

// observed returns a logger that records every entry at debug level or
// above.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// fixture is a sealing store over a memory store the test can read and
// write directly.
type fixture struct {
	inner *memory.TokenStore
	store ports.TokenStore
	logs  *observer.ObservedLogs
}

func newFixture(keys *seal.Keyring) *fixture {
	log, logs := observed()
	inner := memory.NewTokenStore()
	return &fixture{inner: inner, store: seal.NewTokenStore(inner, keys, seal.Config{KeyName: keyName, Log: log}), logs: logs}
}

// raw returns the value the inner store holds for the tenant.
func (f *fixture) raw(t *testing.T, tenant string) ports.CachedToken {
	t.Helper()
	tok, found, err := f.inner.GetToken(t.Context(), tenant)
	if err != nil || !found {
		t.Fatalf("inner GetToken(%s) = found %v, err %v; want a value", tenant, found, err)
	}
	return tok
}

// setRaw writes tok straight into the inner store.
func (f *fixture) setRaw(t *testing.T, tenant string, tok ports.CachedToken) {
	t.Helper()
	if err := f.inner.PutToken(t.Context(), tenant, tok, time.Hour); err != nil {
		t.Fatalf("inner PutToken(%s): %v", tenant, err)
	}
}

func put(t *testing.T, s ports.TokenStore, tenant string, tok ports.CachedToken) {
	t.Helper()
	if err := s.PutToken(t.Context(), tenant, tok, time.Hour); err != nil {
		t.Fatalf("PutToken(%s): %v", tenant, err)
	}
}

func mustGet(t *testing.T, s ports.TokenStore, tenant string) ports.CachedToken {
	t.Helper()
	tok, found, err := s.GetToken(t.Context(), tenant)
	if err != nil || !found {
		t.Fatalf("GetToken(%s) = found %v, err %v; want a token", tenant, found, err)
	}
	return tok
}

// assertMiss fails unless the tenant's token is a miss without error.
func assertMiss(t *testing.T, s ports.TokenStore, tenant string) {
	t.Helper()
	tok, found, err := s.GetToken(t.Context(), tenant)
	if err != nil || found || tok != (ports.CachedToken{}) {
		t.Fatalf("GetToken(%s) = %+v, found %v, err %v; want a miss without error", tenant, tok, found, err)
	}
}

// sampleToken is a token with both times set, to the millisecond.
func sampleToken(access string) ports.CachedToken {
	return ports.CachedToken{
		AccessToken: access,
		ExpiresAt:   time.UnixMilli(1_800_000_000_000),
		RefreshAt:   time.UnixMilli(1_799_999_700_000),
	}
}

func sameToken(a, b ports.CachedToken) bool {
	return a.AccessToken == b.AccessToken && a.ExpiresAt.Equal(b.ExpiresAt) && a.RefreshAt.Equal(b.RefreshAt)
}

// logText is everything an entry carries: its message and every field.
func logText(e observer.LoggedEntry) string {
	return e.Message + " " + fmt.Sprint(e.ContextMap())
}

// assertNoSecrets fails when any secret appears in any log entry or in
// any of texts.
func assertNoSecrets(t *testing.T, logs *observer.ObservedLogs, texts []string, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		texts = append(texts, logText(e))
	}
	for _, text := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%q holds the secret %q", text, s)
			}
		}
	}
}

// assertMissLogged fails unless logs hold exactly one warning about a
// value that does not open, for the tenant and with the reason.
func assertMissLogged(t *testing.T, logs *observer.ObservedLogs, tenant, reason string) {
	t.Helper()
	entries := logs.FilterMessage(missMessage).All()
	if len(entries) != 1 {
		t.Fatalf("logged %d entries %q, want 1; logged: %v", len(entries), missMessage, logs.All())
	}
	e := entries[0]
	if e.Level != zapcore.WarnLevel {
		t.Errorf("logged at %v, want warn", e.Level)
	}
	want := map[string]any{"tenant": tenant, "reason": reason}
	if got := e.ContextMap(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("logged fields %v, want %v", got, want)
	}
}

func TestTokenStoreContract(t *testing.T) {
	keys := keyring(t, newKey(t, "k1"), newKey(t, "k0"))
	contract.TokenStore(t, func(t *testing.T) ports.TokenStore {
		return seal.NewTokenStore(memory.NewTokenStore(), keys, seal.Config{KeyName: keyName})
	})
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(keyring(t, newKey(t, "k1")))
	tenant := contract.TenantID(t)
	give := sampleToken("secret-access-token")
	put(t, f.store, tenant, give)

	raw := f.raw(t, tenant)
	if !strings.HasPrefix(raw.AccessToken, "v1.k1.") {
		t.Errorf("stored value starts %.6q, want v1.k1.", raw.AccessToken)
	}
	if strings.Contains(raw.AccessToken, give.AccessToken) {
		t.Error("stored value holds the access token in clear")
	}
	if !raw.ExpiresAt.Equal(give.ExpiresAt) || !raw.RefreshAt.Equal(give.RefreshAt) {
		t.Errorf("stored times = %v, %v; want %v, %v in clear", raw.ExpiresAt, raw.RefreshAt, give.ExpiresAt, give.RefreshAt)
	}
	if got := mustGet(t, f.store, tenant); !sameToken(got, give) {
		t.Errorf("GetToken = %+v, want %+v", got, give)
	}

	put(t, f.store, tenant, give)
	if again := f.raw(t, tenant); again.AccessToken == raw.AccessToken {
		t.Error("the same token sealed twice gave the same text: the nonce is not fresh")
	}
}

func TestTimesComeFromTheSealedValue(t *testing.T) {
	f := newFixture(keyring(t, newKey(t, "k1")))
	tenant := contract.TenantID(t)
	give := sampleToken("tok")
	put(t, f.store, tenant, give)

	raw := f.raw(t, tenant)
	raw.ExpiresAt = raw.ExpiresAt.Add(24 * time.Hour)
	raw.RefreshAt = time.Time{}
	f.setRaw(t, tenant, raw)
	if got := mustGet(t, f.store, tenant); !sameToken(got, give) {
		t.Errorf("GetToken after the clear times changed = %+v, want the sealed %+v", got, give)
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := newKey(t, "old"), newKey(t, "new")
	tenant := contract.TenantID(t)
	inner := memory.NewTokenStore()
	before := seal.NewTokenStore(inner, keyring(t, oldKey), seal.Config{KeyName: keyName})
	during := seal.NewTokenStore(inner, keyring(t, newKey, oldKey), seal.Config{KeyName: keyName})
	log, logs := observed()
	after := seal.NewTokenStore(inner, keyring(t, newKey), seal.Config{KeyName: keyName, Log: log})

	sealedOld := sampleToken("sealed-with-old")
	put(t, before, tenant, sealedOld)
	if got := mustGet(t, during, tenant); !sameToken(got, sealedOld) {
		t.Errorf("keyring [new old] read %+v, want %+v", got, sealedOld)
	}
	assertMiss(t, after, tenant)
	assertMissLogged(t, logs, tenant, "unknown key id old")

	sealedNew := sampleToken("sealed-with-new")
	put(t, during, tenant, sealedNew)
	raw, _, err := inner.GetToken(t.Context(), tenant)
	if err != nil || !strings.HasPrefix(raw.AccessToken, "v1.new.") {
		t.Fatalf("value written by keyring [new old] starts %.7q (err %v), want v1.new.", raw.AccessToken, err)
	}
	for name, s := range map[string]ports.TokenStore{"[new old]": during, "[new]": after} {
		if got := mustGet(t, s, tenant); !sameToken(got, sealedNew) {
			t.Errorf("keyring %s read %+v, want %+v", name, got, sealedNew)
		}
	}
}

func TestValuesThatDoNotOpenAreMisses(t *testing.T) {
	key, other := newKey(t, "k1"), newKey(t, "k2")
	stranger := newKey(t, "k9") // in no store's keyring
	const access = "the-access-token"

	// Each case turns the tenant's sealed value (written by f.store)
	// into one that does not open.
	tests := []struct {
		name string
		give func(t *testing.T, f *fixture, tenant string)
		want string // the reason logged
	}{
		{
			name: "plain text written before sealing",
			give: func(t *testing.T, f *fixture, tenant string) {
				f.setRaw(t, tenant, sampleToken(access))
			},
			want: "not sealed",
		},
		{
			name: "byte flipped",
			give: func(t *testing.T, f *fixture, tenant string) {
				raw := f.raw(t, tenant)
				b := []byte(raw.AccessToken)
				i := len("v1.k1.") + (len(b)-len("v1.k1."))/2
				if b[i] == 'A' {
					b[i] = 'B'
				} else {
					b[i] = 'A'
				}
				raw.AccessToken = string(b)
				f.setRaw(t, tenant, raw)
			},
			want: "does not authenticate",
		},
		{
			name: "moved from another tenant",
			give: func(t *testing.T, f *fixture, tenant string) {
				other := tenant + "-other"
				put(t, f.store, other, sampleToken(access))
				f.setRaw(t, tenant, f.raw(t, other))
			},
			want: "does not authenticate",
		},
		{
			name: "sealed with a key not in the keyring",
			give: func(t *testing.T, f *fixture, tenant string) {
				put(t, seal.NewTokenStore(f.inner, keyring(t, stranger), seal.Config{KeyName: keyName}), tenant, sampleToken(access))
			},
			want: "unknown key id k9",
		},
		{
			name: "key id changed to another key's",
			give: func(t *testing.T, f *fixture, tenant string) {
				raw := f.raw(t, tenant)
				raw.AccessToken = "v1.k2." + strings.TrimPrefix(raw.AccessToken, "v1.k1.")
				f.setRaw(t, tenant, raw)
			},
			want: "does not authenticate",
		},
		{
			name: "unknown version",
			give: func(t *testing.T, f *fixture, tenant string) {
				raw := f.raw(t, tenant)
				raw.AccessToken = "v2." + strings.TrimPrefix(raw.AccessToken, "v1.")
				f.setRaw(t, tenant, raw)
			},
			want: "unknown version",
		},
		{
			name: "no key id",
			give: func(t *testing.T, f *fixture, tenant string) {
				f.setRaw(t, tenant, sampleToken("v1.k1"))
			},
			want: "malformed",
		},
		{
			name: "key id not valid",
			give: func(t *testing.T, f *fixture, tenant string) {
				f.setRaw(t, tenant, sampleToken("v1.k 1.AAAA"))
			},
			want: "malformed",
		},
		{
			name: "not base64",
			give: func(t *testing.T, f *fixture, tenant string) {
				f.setRaw(t, tenant, sampleToken("v1.k1.!!!!"))
			},
			want: "malformed",
		},
		{
			name: "truncated",
			give: func(t *testing.T, f *fixture, tenant string) {
				raw := f.raw(t, tenant)
				raw.AccessToken = raw.AccessToken[:len("v1.k1.")+20]
				f.setRaw(t, tenant, raw)
			},
			want: "malformed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(keyring(t, key, other))
			tenant := contract.TenantID(t)
			put(t, f.store, tenant, sampleToken(access))
			tt.give(t, f, tenant)
			stored := f.raw(t, tenant)

			assertMiss(t, f.store, tenant)
			assertMissLogged(t, f.logs, tenant, tt.want)
			if deleted, err := f.store.DeleteTokenIf(t.Context(), tenant, access); err != nil || deleted {
				t.Errorf("DeleteTokenIf = %v, %v; want false, nil", deleted, err)
			}
			if got := f.raw(t, tenant); got != stored {
				t.Error("DeleteTokenIf changed a value that does not open")
			}
			secrets := slices.Concat(key.secrets(), other.secrets(), stranger.secrets())
			assertNoSecrets(t, f.logs, nil, append(secrets, access, stored.AccessToken)...)
		})
	}
}

// hookedStore is a TokenStore that runs beforeDeleteIf once, just before
// its next DeleteTokenIf: a write landing between the sealing store's read
// and its conditional delete.
type hookedStore struct {
	ports.TokenStore
	beforeDeleteIf func()
}

func (s *hookedStore) DeleteTokenIf(ctx context.Context, tenantID, accessToken string) (bool, error) {
	if hook := s.beforeDeleteIf; hook != nil {
		s.beforeDeleteIf = nil
		hook()
	}
	return s.TokenStore.DeleteTokenIf(ctx, tenantID, accessToken)
}

func TestDeleteTokenIf(t *testing.T) {
	keys := keyring(t, newKey(t, "k1"))

	t.Run("deletes the token named, whatever its nonce", func(t *testing.T) {
		f := newFixture(keys)
		tenant := contract.TenantID(t)
		put(t, f.store, tenant, sampleToken("current"))
		put(t, f.store, tenant, sampleToken("current")) // sealed again: another nonce
		if deleted, err := f.store.DeleteTokenIf(t.Context(), tenant, "current"); err != nil || !deleted {
			t.Fatalf("DeleteTokenIf(current) = %v, %v; want true, nil", deleted, err)
		}
		if _, found, _ := f.inner.GetToken(t.Context(), tenant); found {
			t.Error("the inner store still holds the token")
		}
	})

	t.Run("leaves another token", func(t *testing.T) {
		f := newFixture(keys)
		tenant := contract.TenantID(t)
		if deleted, err := f.store.DeleteTokenIf(t.Context(), tenant, "absent"); err != nil || deleted {
			t.Errorf("DeleteTokenIf on a miss = %v, %v; want false, nil", deleted, err)
		}
		put(t, f.store, tenant, sampleToken("current"))
		if deleted, err := f.store.DeleteTokenIf(t.Context(), tenant, "rejected"); err != nil || deleted {
			t.Errorf("DeleteTokenIf(rejected) = %v, %v; want false, nil", deleted, err)
		}
		if got := mustGet(t, f.store, tenant); got.AccessToken != "current" {
			t.Errorf("GetToken = %q, want current", got.AccessToken)
		}
	})

	t.Run("leaves a token sealed in its place meanwhile", func(t *testing.T) {
		inner := memory.NewTokenStore()
		hooked := &hookedStore{TokenStore: inner}
		store := seal.NewTokenStore(hooked, keys, seal.Config{KeyName: keyName})
		other := seal.NewTokenStore(inner, keys, seal.Config{KeyName: keyName})
		tenant := contract.TenantID(t)
		put(t, store, tenant, sampleToken("rejected"))
		rewritten := sampleToken("rejected") // the same token, sealed anew
		rewritten.ExpiresAt = rewritten.ExpiresAt.Add(time.Hour)
		hooked.beforeDeleteIf = func() { put(t, other, tenant, rewritten) }

		if deleted, err := store.DeleteTokenIf(t.Context(), tenant, "rejected"); err != nil || deleted {
			t.Errorf("DeleteTokenIf with a write in between = %v, %v; want false, nil", deleted, err)
		}
		if got := mustGet(t, store, tenant); !sameToken(got, rewritten) {
			t.Errorf("GetToken = %+v, want the token written in between, %+v", got, rewritten)
		}
	})
}

// failingStore is a TokenStore whose every call fails with err.
type failingStore struct{ err error }

func (s failingStore) GetToken(context.Context, string) (ports.CachedToken, bool, error) {
	return ports.CachedToken{}, false, s.err
}

func (s failingStore) PutToken(context.Context, string, ports.CachedToken, time.Duration) error {
	return s.err
}

func (s failingStore) DeleteToken(context.Context, string) error { return s.err }

func (s failingStore) DeleteTokenIf(context.Context, string, string) (bool, error) {
	return false, s.err
}

func TestErrorsPassThroughUnchanged(t *testing.T) {
	errDown := errors.New("store down")
	log, logs := observed()
	s := seal.NewTokenStore(failingStore{err: errDown}, keyring(t, newKey(t, "k1")), seal.Config{KeyName: keyName, Log: log})
	ctx := t.Context()
	if _, found, err := s.GetToken(ctx, "t"); err != errDown || found {
		t.Errorf("GetToken = found %v, err %v; want %v", found, err, errDown)
	}
	if err := s.PutToken(ctx, "t", sampleToken("tok"), time.Hour); err != errDown {
		t.Errorf("PutToken = %v, want %v", err, errDown)
	}
	if err := s.DeleteToken(ctx, "t"); err != errDown {
		t.Errorf("DeleteToken = %v, want %v", err, errDown)
	}
	if deleted, err := s.DeleteTokenIf(ctx, "t", "tok"); err != errDown || deleted {
		t.Errorf("DeleteTokenIf = %v, %v; want false, %v", deleted, err, errDown)
	}
	if n := logs.Len(); n != 0 {
		t.Errorf("logged %d entries for errors it returned, want none: %v", n, logs.All())
	}
}

func TestNoSecretIsLoggedOrReturned(t *testing.T) {
	key := newKey(t, "k1")
	f := newFixture(keyring(t, key))
	ctx := t.Context()
	tenant := contract.TenantID(t)
	const access = "very-secret-access-token"
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}

	note(f.store.PutToken(ctx, tenant, sampleToken(access), time.Hour))
	note(f.store.PutToken(ctx, tenant, sampleToken(access), 0)) // refused by the inner store
	sealed := f.raw(t, tenant).AccessToken
	_, _, err := f.store.GetToken(ctx, tenant)
	note(err)

	// Every way of not opening, each logged.
	moved := tenant + "-moved"
	f.setRaw(t, moved, f.raw(t, tenant))
	plain := tenant + "-plain"
	f.setRaw(t, plain, sampleToken(access))
	tampered := tenant + "-tampered"
	f.setRaw(t, tampered, sampleToken(sealed[:len(sealed)-8]+"AAAAAAAA"))
	for _, id := range []string{moved, plain, tampered} {
		_, _, err := f.store.GetToken(ctx, id)
		note(err)
		_, err = f.store.DeleteTokenIf(ctx, id, access)
		note(err)
	}
	_, err = f.store.DeleteTokenIf(ctx, tenant, access)
	note(err)

	for _, specs := range [][]string{
		{key.b64}, {"k1:" + key.b64[:20]}, {key.spec(), key.spec()}, {key.b64 + ":" + key.b64},
	} {
		_, err := seal.ParseKeys(specs)
		note(err)
	}

	if f.logs.Len() != 3 {
		t.Errorf("logged %d entries, want 3 (one per value that does not open): %v", f.logs.Len(), f.logs.All())
	}
	assertNoSecrets(t, f.logs, errs, append(key.secrets(), access, sealed, strings.TrimPrefix(sealed, "v1.k1."))...)
}

func TestParseKeys(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	short := make([]byte, 16)
	if _, err := rand.Read(short); err != nil {
		t.Fatal(err)
	}
	shortB64 := base64.StdEncoding.EncodeToString(short)
	long := slices.Concat(k1.raw, k2.raw[:1])
	longB64 := base64.StdEncoding.EncodeToString(long)
	notB64 := k2.b64[:10] + "!" + k2.b64[11:]

	tests := []struct {
		name string
		give []string
		want string // what the error must say
	}{
		{name: "no keys", give: nil, want: "no keys"},
		{name: "empty list", give: []string{}, want: "no keys"},
		{name: "no colon", give: []string{k1.spec(), k2.b64}, want: "key 2: "},
		{name: "empty id", give: []string{":" + k1.b64}, want: "key 1: id must be"},
		{name: "id too long", give: []string{strings.Repeat("a", 33) + ":" + k1.b64}, want: "key 1: id must be"},
		{name: "id with a dot", give: []string{"k.1:" + k1.b64}, want: "key 1: id must be"},
		{name: "key and id swapped", give: []string{k1.b64 + ":k1"}, want: "key 1: id must be"},
		{name: "not base64", give: []string{k1.spec(), "k2:" + notB64}, want: "key 2 (id k2): not base64"},
		{name: "empty key", give: []string{"k1:"}, want: "key 1 (id k1): 0 bytes, want 32"},
		{name: "16 bytes", give: []string{"k1:" + shortB64}, want: "key 1 (id k1): 16 bytes, want 32"},
		{name: "33 bytes", give: []string{k2.spec(), "k1:" + longB64}, want: "key 2 (id k1): 33 bytes, want 32"},
		{name: "duplicate id", give: []string{k1.spec(), "k1:" + k2.b64}, want: "key 2 (id k1): id used twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring, err := seal.ParseKeys(tt.give)
			if err == nil {
				t.Fatalf("ParseKeys = %v, nil; want an error", ring.IDs())
			}
			if !errors.Is(err, seal.ErrBadKey) {
				t.Errorf("error %q does not wrap ErrBadKey", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			secrets := slices.Concat(k1.secrets(), k2.secrets(), []string{shortB64, string(short), longB64, string(long), notB64})
			for _, s := range secrets {
				for part := range parts(s, 8) {
					if strings.Contains(err.Error(), part) {
						t.Errorf("error %q holds %q, part of a key", err, part)
					}
				}
			}
		})
	}
}

// parts yields every run of n bytes of s.
func parts(s string, n int) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for i := 0; i+n <= len(s); i++ {
			if !yield(s[i : i+n]) {
				return
			}
		}
	}
}

func TestParseKeysReadsEveryBase64Form(t *testing.T) {
	key := newKey(t, "k1")
	tests := []struct {
		name string
		give string
	}{
		{name: "standard, padded", give: base64.StdEncoding.EncodeToString(key.raw)},
		{name: "standard, unpadded", give: base64.RawStdEncoding.EncodeToString(key.raw)},
		{name: "URL, padded", give: base64.URLEncoding.EncodeToString(key.raw)},
		{name: "URL, unpadded", give: base64.RawURLEncoding.EncodeToString(key.raw)},
		{name: "surrounded by spaces", give: key.b64 + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring, err := seal.ParseKeys([]string{" k1:" + tt.give})
			if err != nil {
				t.Fatalf("ParseKeys: %v", err)
			}
			// The same key: it opens what the standard form sealed.
			inner := memory.NewTokenStore()
			tenant := contract.TenantID(t)
			put(t, seal.NewTokenStore(inner, keyring(t, key), seal.Config{KeyName: keyName}), tenant, sampleToken("tok"))
			if got := mustGet(t, seal.NewTokenStore(inner, ring, seal.Config{KeyName: keyName}), tenant); got.AccessToken != "tok" {
				t.Errorf("GetToken = %q, want tok", got.AccessToken)
			}
		})
	}
}

func TestKeyringIDs(t *testing.T) {
	ring := keyring(t, newKey(t, "new"), newKey(t, "old_1"), newKey(t, "Old-0"))
	want := []string{"new", "old_1", "Old-0"}
	got := ring.IDs()
	if !slices.Equal(got, want) {
		t.Fatalf("IDs = %v, want %v", got, want)
	}
	got[0] = "changed"
	if again := ring.IDs(); !slices.Equal(again, want) {
		t.Errorf("IDs after changing its answer = %v, want %v", again, want)
	}
}

// TestKeyringPrintsOnlyIDs checks every way a keyring is printed or
// logged: the key ids show, no form of a key does.
func TestKeyringPrintsOnlyIDs(t *testing.T) {
	k1, k2 := newKey(t, "new"), newKey(t, "old")
	ring := keyring(t, k1, k2)

	if got, want := ring.String(), `seal.Keyring{IDs: ["new" "old"]}`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	if got, want := ring.GoString(), `&seal.Keyring{IDs:[]string{"new", "old"}}`; got != want {
		t.Errorf("GoString() = %s, want %s", got, want)
	}
	var none *seal.Keyring
	if got := fmt.Sprintf("%v %#v", none, none); got != "<nil> (*seal.Keyring)(nil)" {
		t.Errorf("a nil keyring prints as %s", got)
	}

	log, logs := observed()
	log.Info("keys", zap.Any("keyring", ring), zap.Stringer("stringer", ring))
	outputs := []string{
		fmt.Sprintf("%v %+v %#v %s %q", ring, ring, ring, ring, ring),
		fmt.Sprintf("%v %+v %#v", struct{ K *seal.Keyring }{ring}, struct{ K *seal.Keyring }{ring}, struct{ K *seal.Keyring }{ring}),
		fmt.Sprint(logs.All()[0].ContextMap()),
		// Every verb prints the ids, not the ciphers' key schedules.
		fmt.Sprintf("%d %10.40s", ring, ring),
		// encoding/json, which zap.Reflect goes through.
		mustJSON(t, struct{ K *seal.Keyring }{ring}),
	}
	if got, want := outputs[len(outputs)-1], `{"K":{"IDs":["new","old"]}}`; got != want {
		t.Errorf("json.Marshal = %s, want %s", got, want)
	}
	for _, out := range outputs {
		if !strings.Contains(out, "new") || !strings.Contains(out, "old") {
			t.Errorf("output %q does not show the key ids", out)
		}
		for _, secret := range slices.Concat(k1.secrets(), k2.secrets()) {
			if strings.Contains(out, secret) {
				t.Errorf("output %q shows a key", out)
			}
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal(%T): %v", v, err)
	}
	return string(b)
}

func TestNewTokenStoreNeedsKeyName(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewTokenStore without KeyName did not panic")
		}
	}()
	seal.NewTokenStore(memory.NewTokenStore(), keyring(t, newKey(t, "k1")), seal.Config{})
}

// redisClient returns a client to the Redis shared by the package's tests,
// closed when the test ends.
func redisClient(t *testing.T) *redigo.Client {
	t.Helper()
	c, err := redigo.NewClient(redigo.Options{
		URL:          redistest.SharedURL(t),
		DialTimeout:  testTimeout,
		ReadTimeout:  testTimeout,
		WriteTimeout: testTimeout,
		MaxIdle:      2,
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawDo runs one command on a connection of its own to the shared Redis.
func rawDo(t *testing.T, cmd string, args ...any) any {
	t.Helper()
	c, err := redis.DialURL(redistest.SharedURL(t),
		redis.DialConnectTimeout(testTimeout), redis.DialReadTimeout(testTimeout), redis.DialWriteTimeout(testTimeout))
	if err != nil {
		t.Fatalf("dial the shared Redis: %v", err)
	}
	defer c.Close()
	reply, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return reply
}

func TestTokenStoreContractOnRedis(t *testing.T) {
	keys := keyring(t, newKey(t, "k1"))
	c := redisClient(t)
	contract.TokenStore(t, func(t *testing.T) ports.TokenStore {
		return seal.NewTokenStore(redigo.NewTokenStore(c), keys, seal.Config{KeyName: redigo.TokenKey})
	})
}

func TestOnRedis(t *testing.T) {
	key := newKey(t, "k1")
	log, logs := observed()
	plainStore := redigo.NewTokenStore(redisClient(t))
	s := seal.NewTokenStore(plainStore, keyring(t, key), seal.Config{KeyName: redigo.TokenKey, Log: log})
	tenant := contract.TenantID(t)
	const access = "redis-secret-access-token"
	give := sampleToken(access)
	put(t, s, tenant, give)

	stored, err := redis.String(rawDo(t, "GET", redigo.TokenKey(tenant)), nil)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	if strings.Contains(stored, access) {
		t.Fatal("Redis holds the access token in clear")
	}
	var fields struct {
		AccessToken string `json:"access_token"`
		ExpiresAt   int64  `json:"expires_at"`
		RefreshAt   int64  `json:"refresh_at"`
	}
	if err := json.Unmarshal([]byte(stored), &fields); err != nil {
		t.Fatalf("stored value is not a token's JSON: %v", err)
	}
	if !strings.HasPrefix(fields.AccessToken, "v1.k1.") {
		t.Errorf("stored access_token starts %.6q, want v1.k1.", fields.AccessToken)
	}
	if fields.ExpiresAt != give.ExpiresAt.UnixMilli() || fields.RefreshAt != give.RefreshAt.UnixMilli() {
		t.Errorf("stored times = %d, %d; want %d, %d in clear", fields.ExpiresAt, fields.RefreshAt, give.ExpiresAt.UnixMilli(), give.RefreshAt.UnixMilli())
	}
	if got := mustGet(t, s, tenant); !sameToken(got, give) {
		t.Errorf("GetToken = %+v, want %+v", got, give)
	}

	if deleted, err := s.DeleteTokenIf(t.Context(), tenant, "rejected"); err != nil || deleted {
		t.Errorf("DeleteTokenIf(rejected) = %v, %v; want false, nil", deleted, err)
	}
	if deleted, err := s.DeleteTokenIf(t.Context(), tenant, access); err != nil || !deleted {
		t.Errorf("DeleteTokenIf(the token) = %v, %v; want true, nil", deleted, err)
	}
	if n, _ := redis.Int(rawDo(t, "EXISTS", redigo.TokenKey(tenant)), nil); n != 0 {
		t.Error("the token is still in Redis after DeleteTokenIf")
	}

	// A token cached in clear, before sealing was turned on, is a miss.
	put(t, plainStore, tenant, give)
	assertMiss(t, s, tenant)
	assertMissLogged(t, logs, tenant, "not sealed")
	assertNoSecrets(t, logs, nil, append(key.secrets(), access, fields.AccessToken)...)
}
