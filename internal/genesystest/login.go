// Package genesystest stands in for a Genesys Cloud login host in tests:
// an httptest server speaking OAuth's client-credentials grant as Genesys
// does (POST /oauth/token, the client in Basic auth), checking the wire
// format of each request it gets.
package genesystest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Login is a stand-in login host. It is safe for concurrent use.
type Login struct {
	*httptest.Server
	prefix string
	calls  atomic.Int64

	mu       sync.Mutex
	clients  map[string]string // client id → secret
	answer   func(n int64) (status int, contentType, body string)
	lifetime int             // expires_in of the tokens issued, in seconds
	issued   map[string]bool // tokens issued and not revoked
	problems []string
}

// NewLogin starts a login host that knows clients (client id → secret) and
// stops it when t ends; a request in the wrong format fails t then. A known
// client gets a token named tokenPrefix-<n>, n counting the requests, valid
// for 86399 s; an unknown one, or a wrong secret, gets 401 with a body that
// echoes the secret, as a careless host might, so that tests can check it is
// never logged.
func NewLogin(t testing.TB, tokenPrefix string, clients map[string]string) *Login {
	t.Helper()
	l := &Login{prefix: tokenPrefix, clients: clients, lifetime: 86399, issued: map[string]bool{}}
	l.Server = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(l.Close)
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, p := range l.problems {
			t.Error("genesys login stand-in: " + p)
		}
	})
	return l
}

// SetAnswer makes the host answer the n-th request of a known client with
// answer's status, content type and body instead of a token.
func (l *Login) SetAnswer(answer func(n int64) (status int, contentType, body string)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answer = answer
}

// SetLifetime makes the host issue tokens valid for seconds instead of
// 86399.
func (l *Login) SetLifetime(seconds int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lifetime = seconds
}

// SetClient makes the host know client id by secret, in place of the
// secret it knew before, as when a client's secret is rotated.
func (l *Login) SetClient(id, secret string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clients[id] = secret
}

// Calls counts the requests the host got.
func (l *Login) Calls() int64 { return l.calls.Load() }

// Valid reports whether token was issued by the host and not revoked.
func (l *Login) Valid(token string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.issued[token]
}

// Revoke makes an issued token invalid, as Genesys does when it answers 401
// to it.
func (l *Login) Revoke(token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.issued, token)
}

func (l *Login) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

func (l *Login) serve(w http.ResponseWriter, r *http.Request) {
	n := l.calls.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/oauth/token" {
		l.problem("got %s %s, want POST /oauth/token", r.Method, r.URL.Path)
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		l.problem("grant_type = %q, want client_credentials", r.PostForm.Get("grant_type"))
	}
	id, secret, ok := r.BasicAuth()
	l.mu.Lock()
	want, known := l.clients[id]
	answer, lifetime := l.answer, l.lifetime
	tok := fmt.Sprintf("%s-%d", l.prefix, n)
	if ok && known && secret == want && answer == nil {
		l.issued[tok] = true
	}
	l.mu.Unlock()
	if !ok || !known || secret != want {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprintf(w, `{"error":"invalid_client","error_description":"client %s with secret %s rejected"}`, id, secret)
		return
	}
	if answer == nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":%d}`, tok, lifetime)
		return
	}
	status, ct, body := answer(n)
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
