package genesys_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/genesys"
	"github.com/wa2genesys/connectorcache/internal/genesystest"
	"github.com/wa2genesys/connectorcache/ports"
)

func TestTokenFetcher_ClientCredentialsPerTenant(t *testing.T) {
	ls := genesystest.NewLogin(t, "tok", map[string]string{"id-a": "secret-a", "id-b": "secret-b"})
	var issued sync.Map // token → client id
	ls.SetAnswer(func(n int64) (int, string, string) {
		return http.StatusOK, "application/json",
			fmt.Sprintf(`{"access_token":"tok-%d","token_type":"bearer","expires_in":%d}`, n, 1000+n)
	})
	f := genesys.NewTokenFetcher(map[string]genesys.Credentials{
		"a": {LoginURL: ls.URL, ClientID: "id-a", ClientSecret: "secret-a"},
		"b": {LoginURL: ls.URL + "/", ClientID: "id-b", ClientSecret: "secret-b"},
	}, nil)

	for _, tenant := range []string{"a", "b"} {
		tok, err := f.FetchToken(context.Background(), tenant)
		if err != nil {
			t.Fatalf("FetchToken(%s): %v", tenant, err)
		}
		if _, dup := issued.LoadOrStore(tok.AccessToken, tenant); dup {
			t.Errorf("FetchToken(%s) = %q, a token already issued", tenant, tok.AccessToken)
		}
		var n int64
		_, _ = fmt.Sscanf(tok.AccessToken, "tok-%d", &n)
		if want := time.Duration(1000+n) * time.Second; tok.ExpiresIn != want {
			t.Errorf("FetchToken(%s).ExpiresIn = %v, want %v as the login host sent it", tenant, tok.ExpiresIn, want)
		}
	}
	if got := ls.Calls(); got != 2 {
		t.Errorf("login calls = %d, want 2", got)
	}
}

func TestTokenFetcher_ExpiresIn(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		give        string
		want        time.Duration
	}{
		{"json number", "application/json", `{"access_token":"x","expires_in":3600}`, time.Hour},
		{"json string", "application/json", `{"access_token":"x","expires_in":"300"}`, 5 * time.Minute},
		{"short lifetime kept as is", "application/json", `{"access_token":"x","expires_in":1}`, time.Second},
		{"absent means unknown", "application/json", `{"access_token":"x"}`, 0},
		{"negative means unknown", "application/json", `{"access_token":"x","expires_in":-5}`, 0},
		{"zero means unknown", "application/json", `{"access_token":"x","expires_in":0}`, 0},
		{"form encoded", "application/x-www-form-urlencoded", `access_token=x&expires_in=120`, 2 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := genesystest.NewLogin(t, "tok", map[string]string{"id": "secret"})
			ls.SetAnswer(func(int64) (int, string, string) { return http.StatusOK, tt.contentType, tt.give })
			f := genesys.NewTokenFetcher(map[string]genesys.Credentials{
				"t": {LoginURL: ls.URL, ClientID: "id", ClientSecret: "secret"},
			}, nil)
			tok, err := f.FetchToken(context.Background(), "t")
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != "x" || tok.ExpiresIn != tt.want {
				t.Errorf("FetchToken = %+v, want {x %v}", tok, tt.want)
			}
		})
	}
}

func TestTokenFetcher_Errors(t *testing.T) {
	ls := genesystest.NewLogin(t, "tok", map[string]string{"id": "the-real-secret"})
	ls.SetAnswer(func(int64) (int, string, string) {
		return http.StatusServiceUnavailable, "application/json", `{"error":"temporarily_unavailable"}`
	})
	tests := []struct {
		name     string
		give     genesys.Credentials
		tenant   string
		want     error
		wantText string
	}{
		{name: "unknown tenant", tenant: "nobody", want: genesys.ErrUnknownTenant},
		{name: "rejected client", tenant: "t",
			give:     genesys.Credentials{LoginURL: ls.URL, ClientID: "id", ClientSecret: "wrong-secret"},
			wantText: "401"},
		{name: "login host down", tenant: "t",
			give:     genesys.Credentials{LoginURL: ls.URL, ClientID: "id", ClientSecret: "the-real-secret"},
			wantText: "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := genesys.NewTokenFetcher(map[string]genesys.Credentials{"t": tt.give}, nil)
			_, err := f.FetchToken(context.Background(), tt.tenant)
			if err == nil {
				t.Fatal("FetchToken succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error = %q, want it to say %q", err, tt.wantText)
			}
			for _, secret := range []string{"wrong-secret", "the-real-secret"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q holds the client secret", err)
				}
			}
		})
	}
}

func TestTokenFetcher_UsesGivenClient(t *testing.T) {
	ls := genesystest.NewLogin(t, "tok", map[string]string{"id": "secret"})
	var through atomic.Int64
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		through.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})}
	f := genesys.NewTokenFetcher(map[string]genesys.Credentials{
		"t": {LoginURL: ls.URL, ClientID: "id", ClientSecret: "secret"},
	}, client)
	if _, err := f.FetchToken(context.Background(), "t"); err != nil {
		t.Fatal(err)
	}
	if through.Load() != 1 {
		t.Errorf("requests through the given client = %d, want 1", through.Load())
	}
}

func TestTokenFetcher_BoundedByContext(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) })
	f := genesys.NewTokenFetcher(map[string]genesys.Credentials{
		"t": {LoginURL: srv.URL, ClientID: "id", ClientSecret: "secret"},
	}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.FetchToken(ctx, "t")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("FetchToken took %v past a 100ms deadline", d)
	}
}

// redirectTarget stands where a redirecting host sends its clients: it
// counts the requests it gets, and those that carry an Authorization
// header.
type redirectTarget struct {
	*httptest.Server
	hits, authorized atomic.Int64
}

func newRedirectTarget(t *testing.T) *redirectTarget {
	t.Helper()
	rt := &redirectTarget{}
	rt.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt.hits.Add(1)
		if r.Header.Get("Authorization") != "" {
			rt.authorized.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"from-the-redirect","token_type":"bearer","expires_in":3600}`)
	}))
	t.Cleanup(rt.Close)
	return rt
}

// checkNotFollowed fails t when the target got any request.
func (rt *redirectTarget) checkNotFollowed(t *testing.T) {
	t.Helper()
	if n := rt.hits.Load(); n != 0 {
		t.Errorf("the redirect was followed: its target got %d requests, %d with an Authorization header", n, rt.authorized.Load())
	}
}

// newRedirector starts a host, over TLS when tls is set, that answers
// every request with status and a Location of location.
func newRedirector(t *testing.T, status int, location string, tls bool) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, location, status)
	})
	srv := httptest.NewUnstartedServer(h)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// redirectCases are the redirects the clients must not follow. With tls,
// the redirecting host is https and its target http, and the client given
// is the redirecting host's own (trusting its certificate, following
// redirects); otherwise the adapter's default client is used.
var redirectCases = []struct {
	name   string
	status int
	tls    bool
}{
	{name: "302, default client", status: http.StatusFound},
	{name: "307, default client", status: http.StatusTemporaryRedirect},
	{name: "302 from https to http, given client", status: http.StatusFound, tls: true},
	{name: "308 from https to http, given client", status: http.StatusPermanentRedirect, tls: true},
}

func TestTokenFetcher_FollowsNoRedirect(t *testing.T) {
	for _, tt := range redirectCases {
		t.Run(tt.name, func(t *testing.T) {
			target := newRedirectTarget(t)
			login := newRedirector(t, tt.status, target.URL+"/oauth/token", tt.tls)
			var client *http.Client
			if tt.tls {
				client = login.Client()
			}
			f := genesys.NewTokenFetcher(map[string]genesys.Credentials{
				"t": {LoginURL: login.URL, ClientID: "id", ClientSecret: "secret"},
			}, client)

			switch tok, err := f.FetchToken(context.Background(), "t"); {
			case err == nil:
				t.Errorf("FetchToken = %v, want an error for the %d", tok, tt.status)
			case !strings.Contains(err.Error(), strconv.Itoa(tt.status)):
				t.Errorf("error %q does not say %d", err, tt.status)
			}
			target.checkNotFollowed(t)
			if client != nil && client.CheckRedirect != nil {
				t.Error("the client given had its CheckRedirect changed")
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var _ ports.TokenFetcher = (*genesys.TokenFetcher)(nil)

// decodeJSON decodes body into a generic value, failing t on error.
func decodeJSON(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	return v
}

// TestCredentialsPrintWithoutTheClientSecret prints credentials every way
// fmt and encoding/json do: the login URL and client id show, the client
// secret never does.
func TestCredentialsPrintWithoutTheClientSecret(t *testing.T) {
	const secret = "client-S3cret-of-acme"
	creds := genesys.Credentials{LoginURL: "https://login.mypurecloud.ie", ClientID: "acme-client", ClientSecret: secret}
	holder := struct {
		ByTenant map[string]genesys.Credentials
	}{map[string]genesys.Credentials{"acme": creds}}
	for _, v := range []any{creds, &creds, holder} {
		marshaled, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		for how, out := range map[string]string{
			"fmt":          fmt.Sprintf("%v %+v %#v %s %d %q", v, v, v, v, v, v),
			"json.Marshal": string(marshaled),
		} {
			if !strings.Contains(out, "acme-client") || !strings.Contains(out, "https://login.mypurecloud.ie") {
				t.Errorf("%s of %T does not show the login URL and client id: %s", how, v, out)
			}
			if strings.Contains(out, secret) {
				t.Errorf("%s of %T shows the client secret: %s", how, v, out)
			}
		}
		if out := fmt.Sprintf("%x", v); strings.Contains(out, fmt.Sprintf("%x", secret)) {
			t.Errorf("%%x of %T shows the client secret in hex: %s", v, out)
		}
	}
}
