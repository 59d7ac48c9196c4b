// Package contract holds the behaviour every store adapter must show, as
// test suites that each adapter's tests run with the same assertions: the
// memory stores and the Redis stores answer alike, or a suite fails.
//
// The suites use real time for TTLs, since Redis expiry cannot read an
// injected clock: TTLs are short, and expiry is awaited by polling with a
// generous deadline. Every subtest uses tenant ids of its own, so that the
// suites can run against a server shared with other tests.
package contract

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

const (
	// longTTL is a TTL no test outlives.
	longTTL = time.Hour
	// shortTTL is a TTL tests wait out.
	shortTTL = 150 * time.Millisecond
	// pollTimeout bounds how long a test waits for a short TTL to pass.
	pollTimeout = 5 * time.Second
	// clockSlack covers the difference between the test's clock and the
	// store's when deciding whether a TTL can have passed.
	clockSlack = 20 * time.Millisecond
)

// badTTLs are TTLs a store refuses: Redis takes no expiry under a
// millisecond.
var badTTLs = []time.Duration{0, -time.Second, time.Microsecond}

// TenantID returns a tenant id no other test uses: the end of the test's
// name and a random suffix, in letters, digits, '.', '_' and '-' only, so
// that it is also fit for a URL path and an environment variable name.
// Tests sharing one Redis use it instead of clearing the server.
func TenantID(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, t.Name())
	if len(name) > 80 {
		name = name[len(name)-80:]
	}
	return name + "-" + hex.EncodeToString(b[:])
}

// eventually polls cond until it holds, and fails t when it does not within
// pollTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, pollTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// beforeTTL reports whether an entry written no earlier than start with ttl
// cannot have expired yet, now that a read issued after it has returned.
func beforeTTL(start time.Time, ttl time.Duration) bool {
	return time.Since(start) < ttl-clockSlack
}
