package genesys_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/genesys"
	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/genesystest"
	"github.com/wa2genesys/connectorcache/internal/webhook"
)

const integrationID = "9b1b4a2e-54a0-4c51-8f5e-3c1d2a7f0e11"

// answer is one scripted reply of the Open Messaging stand-in.
type answer struct {
	status     int
	retryAfter string
}

// received is one request the Open Messaging stand-in got.
type received struct {
	method, path, auth, contentType string
	body                            []byte
}

// apiServer stands in for a Genesys API host: it answers from a script
// (then 200) and records every request.
type apiServer struct {
	*httptest.Server
	mu      sync.Mutex
	script  []answer
	got     []received
	arrived []time.Time
}

func newAPIServer(t *testing.T, script ...answer) *apiServer {
	t.Helper()
	s := &apiServer{script: script}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, received{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body})
		s.arrived = append(s.arrived, time.Now())
		a := answer{status: http.StatusAccepted}
		if len(s.script) > 0 {
			a, s.script = s.script[0], s.script[1:]
		}
		s.mu.Unlock()
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, `{"id":"c0ffee"}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

// fixture is a deliverer wired to a real token cache over the memory store,
// fetching from a login stand-in, posting to an API stand-in.
type fixture struct {
	login  *genesystest.Login
	api    *apiServer
	d      *genesys.Deliverer
	sleeps []time.Duration
}

var fixedNow = time.Date(2025, 11, 26, 6, 10, 0, 0, time.UTC)

func newFixture(t *testing.T, maxRetryAfter time.Duration, script ...answer) *fixture {
	t.Helper()
	f := &fixture{login: genesystest.NewLogin(t, "tok", map[string]string{"id": "secret"}), api: newAPIServer(t, script...)}
	fetcher := genesys.NewTokenFetcher(map[string]genesys.Credentials{
		"acme": {LoginURL: f.login.URL, ClientID: "id", ClientSecret: "secret"},
	}, nil)
	tokens := domain.NewTokenCache(memory.NewTokenStore(), fetcher, domain.TokenCacheConfig{})
	f.d = genesys.NewDeliverer(map[string]genesys.Endpoint{
		"acme": {APIURL: f.api.URL, IntegrationID: integrationID},
	}, tokens, genesys.DelivererConfig{
		MaxRetryAfter: maxRetryAfter,
		Sleep: func(ctx context.Context, d time.Duration) error {
			f.sleeps = append(f.sleeps, d)
			return ctx.Err()
		},
		Now: func() time.Time { return fixedNow },
	})
	return f
}

// newTokens returns a token cache for tenant acme over the memory store,
// fetching from a login stand-in of its own.
func newTokens(t *testing.T) *domain.TokenCache {
	t.Helper()
	login := genesystest.NewLogin(t, "tok", map[string]string{"id": "secret"})
	return domain.NewTokenCache(memory.NewTokenStore(), genesys.NewTokenFetcher(map[string]genesys.Credentials{
		"acme": {LoginURL: login.URL, ClientID: "id", ClientSecret: "secret"},
	}, nil), domain.TokenCacheConfig{})
}

func textMessage() webhook.Message {
	return webhook.Message{
		TenantID:  "acme",
		MessageID: "wamid.HBgLMTIwMjU1NTAxNDIVAgASGBQ3RjE0QkM1MDk5RTJBNkQzOEIwMQA=",
		From:      "12025550142",
		Nickname:  "Dana Ortiz",
		Type:      "text",
		Text:      "Where is my parcel?",
		Timestamp: time.Unix(1764137400, 0),
	}
}

func TestDeliverer_WireFormat(t *testing.T) {
	f := newFixture(t, 0)
	if err := f.d.Deliver(context.Background(), textMessage()); err != nil {
		t.Fatal(err)
	}
	got := f.api.requests()
	if len(got) != 1 {
		t.Fatalf("requests = %d, want 1", len(got))
	}
	r := got[0]
	if r.method != http.MethodPost || r.path != "/api/v2/conversations/messages/"+integrationID+"/inbound/open/message" {
		t.Errorf("request = %s %s, want POST to the integration's inbound/open/message", r.method, r.path)
	}
	if r.auth != "Bearer tok-1" {
		t.Errorf("Authorization = %q, want the fetched token as a bearer", r.auth)
	}
	if r.contentType != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", r.contentType)
	}
	want := map[string]any{
		"channel": map[string]any{
			"messageId": "wamid.HBgLMTIwMjU1NTAxNDIVAgASGBQ3RjE0QkM1MDk5RTJBNkQzOEIwMQA=",
			"from":      map[string]any{"nickname": "Dana Ortiz", "id": "12025550142", "idType": "Opaque"},
			"time":      "2025-11-26T06:10:00.000Z",
		},
		"text": "Where is my parcel?",
	}
	if body := decodeJSON(t, r.body); !reflect.DeepEqual(body, want) {
		t.Errorf("body = %v\nwant %v", body, want)
	}
}

func TestDeliverer_NormalizesMessagesWithoutTextOrTime(t *testing.T) {
	tests := []struct {
		name     string
		give     func(*webhook.Message)
		wantText string
		wantTime string
	}{
		{"caption is the text", func(m *webhook.Message) { m.Type, m.Text = "image", "Broken box" }, "Broken box", "2025-11-26T06:10:00.000Z"},
		{"media without caption", func(m *webhook.Message) { m.Type, m.Text = "image", "" }, "[image message]", "2025-11-26T06:10:00.000Z"},
		{"no type and no text", func(m *webhook.Message) { m.Type, m.Text = "", "" }, "[unknown message]", "2025-11-26T06:10:00.000Z"},
		{"no timestamp is stamped now", func(m *webhook.Message) { m.Timestamp = time.Time{} }, "Where is my parcel?", fixedNow.Format("2006-01-02T15:04:05.000Z")},
		{"nickname left out when unknown", func(m *webhook.Message) { m.Nickname = "" }, "Where is my parcel?", "2025-11-26T06:10:00.000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 0)
			msg := textMessage()
			tt.give(&msg)
			if err := f.d.Deliver(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			body := decodeJSON(t, f.api.requests()[0].body)
			channel := body["channel"].(map[string]any)
			if body["text"] != tt.wantText || channel["time"] != tt.wantTime {
				t.Errorf("text, time = %v, %v; want %q, %q", body["text"], channel["time"], tt.wantText, tt.wantTime)
			}
			_, hasNick := channel["from"].(map[string]any)["nickname"]
			if hasNick != (msg.Nickname != "") {
				t.Errorf("from = %v, nickname present %v, want %v", channel["from"], hasNick, msg.Nickname != "")
			}
		})
	}
}

func TestDeliverer_Answers(t *testing.T) {
	inTwoSeconds := fixedNow.Add(2 * time.Second).Format(http.TimeFormat)
	tests := []struct {
		name          string
		maxRetryAfter time.Duration
		give          []answer
		wantStatus    int // 0: delivered
		wantAuth      []string
		wantLogins    int64
		wantSleeps    []time.Duration
	}{
		{name: "accepted", give: []answer{{status: 200}},
			wantAuth: []string{"Bearer tok-1"}, wantLogins: 1},
		{name: "401 once: fresh token, retried", give: []answer{{status: 401}, {status: 200}},
			wantAuth: []string{"Bearer tok-1", "Bearer tok-2"}, wantLogins: 2},
		{name: "401 twice: fails", give: []answer{{status: 401}, {status: 401}}, wantStatus: 401,
			wantAuth: []string{"Bearer tok-1", "Bearer tok-2"}, wantLogins: 2},
		{name: "500 fails at once", give: []answer{{status: 500}}, wantStatus: 500,
			wantAuth: []string{"Bearer tok-1"}, wantLogins: 1},
		{name: "400 fails at once", give: []answer{{status: 400}}, wantStatus: 400,
			wantAuth: []string{"Bearer tok-1"}, wantLogins: 1},
		{name: "429 within bound is waited out", maxRetryAfter: 5 * time.Second,
			give:     []answer{{status: 429, retryAfter: "1"}, {status: 200}},
			wantAuth: []string{"Bearer tok-1", "Bearer tok-1"}, wantLogins: 1, wantSleeps: []time.Duration{time.Second}},
		{name: "429 with an HTTP date", maxRetryAfter: 5 * time.Second,
			give:     []answer{{status: 429, retryAfter: inTwoSeconds}, {status: 200}},
			wantAuth: []string{"Bearer tok-1", "Bearer tok-1"}, wantLogins: 1, wantSleeps: []time.Duration{2 * time.Second}},
		{name: "429 waits add up to the bound", maxRetryAfter: 5 * time.Second,
			give:     []answer{{status: 429, retryAfter: "2"}, {status: 429, retryAfter: "2"}, {status: 200}},
			wantAuth: []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-1"}, wantLogins: 1,
			wantSleeps: []time.Duration{2 * time.Second, 2 * time.Second}},
		{name: "429 past the bound in all fails", maxRetryAfter: 5 * time.Second, wantStatus: 429,
			give:     []answer{{status: 429, retryAfter: "3"}, {status: 429, retryAfter: "3"}},
			wantAuth: []string{"Bearer tok-1", "Bearer tok-1"}, wantLogins: 1, wantSleeps: []time.Duration{3 * time.Second}},
		{name: "429 past the bound fails without waiting", maxRetryAfter: 5 * time.Second, wantStatus: 429,
			give:     []answer{{status: 429, retryAfter: "3600"}},
			wantAuth: []string{"Bearer tok-1"}, wantLogins: 1},
		{name: "429 without Retry-After fails", maxRetryAfter: 5 * time.Second, wantStatus: 429,
			give:     []answer{{status: 429}},
			wantAuth: []string{"Bearer tok-1"}, wantLogins: 1},
		{name: "429 when waiting is off fails", wantStatus: 429,
			give:     []answer{{status: 429, retryAfter: "1"}},
			wantAuth: []string{"Bearer tok-1"}, wantLogins: 1},
		{name: "429 retried a bounded number of times", maxRetryAfter: time.Hour, wantStatus: 429,
			give: []answer{{status: 429, retryAfter: "0"}, {status: 429, retryAfter: "0"},
				{status: 429, retryAfter: "0"}, {status: 429, retryAfter: "0"}, {status: 200}},
			wantAuth:   []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-1", "Bearer tok-1"},
			wantLogins: 1, wantSleeps: []time.Duration{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.maxRetryAfter, tt.give...)
			err := f.d.Deliver(context.Background(), textMessage())
			var se *genesys.StatusError
			switch {
			case tt.wantStatus == 0 && err != nil:
				t.Errorf("Deliver: %v, want delivered", err)
			case tt.wantStatus != 0 && (!errors.As(err, &se) || se.StatusCode != tt.wantStatus):
				t.Errorf("Deliver error = %v, want a StatusError %d", err, tt.wantStatus)
			}
			var auth []string
			for _, r := range f.api.requests() {
				auth = append(auth, r.auth)
			}
			if !reflect.DeepEqual(auth, tt.wantAuth) {
				t.Errorf("requests' Authorization = %q, want %q", auth, tt.wantAuth)
			}
			if got := f.login.Calls(); got != tt.wantLogins {
				t.Errorf("login calls = %d, want %d", got, tt.wantLogins)
			}
			if !reflect.DeepEqual(f.sleeps, tt.wantSleeps) {
				t.Errorf("waits = %v, want %v", f.sleeps, tt.wantSleeps)
			}
		})
	}
}

func TestDeliverer_Failures(t *testing.T) {
	t.Run("unknown tenant", func(t *testing.T) {
		f := newFixture(t, 0)
		msg := textMessage()
		msg.TenantID = "nobody"
		if err := f.d.Deliver(context.Background(), msg); !errors.Is(err, genesys.ErrUnknownTenant) {
			t.Errorf("Deliver error = %v, want ErrUnknownTenant", err)
		}
		if n := len(f.api.requests()); n != 0 {
			t.Errorf("requests = %d, want none", n)
		}
	})
	t.Run("login rejected", func(t *testing.T) {
		f := newFixture(t, 0)
		f.login.SetClient("id", "another-secret")
		if err := f.d.Deliver(context.Background(), textMessage()); err == nil {
			t.Error("Deliver succeeded without a token")
		}
		if n := len(f.api.requests()); n != 0 {
			t.Errorf("requests = %d, want none without a token", n)
		}
	})
	t.Run("context ends while waiting out a 429", func(t *testing.T) {
		api := newAPIServer(t, answer{status: 429, retryAfter: "30"})
		d := genesys.NewDeliverer(map[string]genesys.Endpoint{"acme": {APIURL: api.URL, IntegrationID: "i"}},
			newTokens(t), genesys.DelivererConfig{MaxRetryAfter: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := d.Deliver(ctx, textMessage()); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Deliver error = %v, want the context's deadline", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("Deliver took %v with a 200ms deadline", el)
		}
		if n := len(api.requests()); n != 1 {
			t.Errorf("requests = %d, want 1", n)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		hang := make(chan struct{})
		api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(api.Close)
		t.Cleanup(func() { close(hang) })
		d := genesys.NewDeliverer(map[string]genesys.Endpoint{"acme": {APIURL: api.URL, IntegrationID: "i"}},
			newTokens(t), genesys.DelivererConfig{Client: &http.Client{Timeout: 200 * time.Millisecond}})
		start := time.Now()
		if err := d.Deliver(context.Background(), textMessage()); err == nil {
			t.Error("Deliver succeeded against a server that never answers")
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("Deliver took %v with a 200ms client timeout", el)
		}
	})
}

// TestDeliverer_FollowsNoRedirect checks that a 3xx from the API host fails
// the delivery with its status, and that neither the bearer token nor the
// message reaches the redirect's target.
func TestDeliverer_FollowsNoRedirect(t *testing.T) {
	for _, tt := range redirectCases {
		t.Run(tt.name, func(t *testing.T) {
			target := newRedirectTarget(t)
			api := newRedirector(t, tt.status, target.URL+"/api/v2/conversations/messages/"+integrationID+"/inbound/open/message", tt.tls)
			var client *http.Client
			if tt.tls {
				client = api.Client()
			}
			d := genesys.NewDeliverer(map[string]genesys.Endpoint{
				"acme": {APIURL: api.URL, IntegrationID: integrationID},
			}, newTokens(t), genesys.DelivererConfig{Client: client})

			err := d.Deliver(context.Background(), textMessage())
			var se *genesys.StatusError
			if !errors.As(err, &se) || se.StatusCode != tt.status {
				t.Errorf("Deliver = %v, want a StatusError %d", err, tt.status)
			}
			target.checkNotFollowed(t)
			if client != nil && client.CheckRedirect != nil {
				t.Error("the client given had its CheckRedirect changed")
			}
		})
	}
}

func TestDeliverer_RealRetryAfterWait(t *testing.T) {
	api := newAPIServer(t, answer{status: 429, retryAfter: "1"})
	d := genesys.NewDeliverer(map[string]genesys.Endpoint{"acme": {APIURL: api.URL, IntegrationID: "i"}},
		newTokens(t), genesys.DelivererConfig{MaxRetryAfter: 2 * time.Second})
	if err := d.Deliver(context.Background(), textMessage()); err != nil {
		t.Fatal(err)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.arrived) != 2 {
		t.Fatalf("requests = %d, want 2", len(api.arrived))
	}
	if gap := api.arrived[1].Sub(api.arrived[0]); gap < 900*time.Millisecond {
		t.Errorf("retry came %v after the 429, want it to wait out Retry-After: 1", gap)
	}
}

// roundRobin is a Tokens that hands out a fixed list of tokens in turn, as
// a token pool does. It is safe for concurrent use.
type roundRobin struct {
	mu     sync.Mutex
	tokens []string
	next   int
}

func (r *roundRobin) Token(context.Context, string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tok := r.tokens[r.next%len(r.tokens)]
	r.next++
	return tok, nil
}

// TokenExcept hands out the next token not in except, as a pool does.
func (r *roundRobin) TokenExcept(_ context.Context, _ string, except []string) (string, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range r.tokens {
		tok := r.tokens[r.next%len(r.tokens)]
		r.next++
		if !slices.Contains(except, tok) {
			return tok, true, nil
		}
	}
	return "", false, nil
}

func (r *roundRobin) Reject(context.Context, string, string) error { return nil }

// everNew is a Tokens that hands out a token never handed out before on
// each call.
type everNew struct{ n atomic.Int64 }

func (e *everNew) Token(context.Context, string) (string, error) {
	return fmt.Sprintf("tok-%d", e.n.Add(1)), nil
}

func (e *everNew) TokenExcept(context.Context, string, []string) (string, bool, error) {
	return fmt.Sprintf("tok-%d", e.n.Add(1)), true, nil
}

func (e *everNew) Reject(context.Context, string, string) error { return nil }

// limitingAPI stands in for a Genesys API host that answers 429, with
// Retry-After: 1, to the bearer tokens limits reports, until lifted, and 202
// to the others. It records each request's token.
type limitingAPI struct {
	*httptest.Server
	mu     sync.Mutex
	limits func(token string) bool
	got    []string
}

func newLimitingAPI(t *testing.T, limits func(token string) bool) *limitingAPI {
	t.Helper()
	s := &limitingAPI{limits: limits}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		s.got = append(s.got, tok)
		limited := s.limits != nil && s.limits(tok)
		s.mu.Unlock()
		if limited {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(s.Close)
	return s
}

// lift stops the host limiting any token.
func (s *limitingAPI) lift() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = nil
}

func (s *limitingAPI) tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func TestDeliverer_429TriesTheNextTokenAtOnce(t *testing.T) {
	tests := []struct {
		name          string
		give          []string // the tenant's pool, handed out in turn
		limited       []string // tokens answered 429
		liftAfter     int      // waits after which nothing is limited; 0: never
		maxRetryAfter time.Duration
		wantStatus    int // 0: delivered
		wantTokens    []string
		wantSleeps    []time.Duration
	}{
		{name: "first limited: the second at once", give: []string{"a", "b", "c"}, limited: []string{"a"},
			maxRetryAfter: 5 * time.Second, wantTokens: []string{"a", "b"}},
		{name: "two limited: the third at once", give: []string{"a", "b", "c"}, limited: []string{"a", "b"},
			maxRetryAfter: 5 * time.Second, wantTokens: []string{"a", "b", "c"}},
		{name: "all limited: Retry-After waited out, one request per wait",
			give: []string{"a", "b", "c"}, limited: []string{"a", "b", "c"}, liftAfter: 2,
			maxRetryAfter: 5 * time.Second, wantTokens: []string{"a", "b", "c", "a", "b"},
			wantSleeps: []time.Duration{time.Second, time.Second}},
		{name: "all limited, waiting off: fails once each was tried",
			give: []string{"a", "b", "c"}, limited: []string{"a", "b", "c"}, wantStatus: 429,
			wantTokens: []string{"a", "b", "c"}},
		{name: "all limited past the bound: fails", give: []string{"a", "b"}, limited: []string{"a", "b"},
			maxRetryAfter: 2 * time.Second, wantStatus: 429, wantTokens: []string{"a", "b", "a", "b"},
			wantSleeps: []time.Duration{time.Second, time.Second}},
		{name: "pool of one: Retry-After waited out", give: []string{"a"}, limited: []string{"a"}, liftAfter: 1,
			maxRetryAfter: 5 * time.Second, wantTokens: []string{"a", "a"}, wantSleeps: []time.Duration{time.Second}},
		{name: "pool of one, waiting off: fails", give: []string{"a"}, limited: []string{"a"}, wantStatus: 429,
			wantTokens: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newLimitingAPI(t, func(tok string) bool { return slices.Contains(tt.limited, tok) })
			var sleeps []time.Duration
			d := genesys.NewDeliverer(map[string]genesys.Endpoint{"acme": {APIURL: api.URL, IntegrationID: integrationID}},
				&roundRobin{tokens: tt.give}, genesys.DelivererConfig{
					MaxRetryAfter: tt.maxRetryAfter,
					Sleep: func(ctx context.Context, d time.Duration) error {
						sleeps = append(sleeps, d)
						if len(sleeps) == tt.liftAfter {
							api.lift()
						}
						return ctx.Err()
					},
				})
			err := d.Deliver(context.Background(), textMessage())
			var se *genesys.StatusError
			switch {
			case tt.wantStatus == 0 && err != nil:
				t.Errorf("Deliver: %v, want delivered", err)
			case tt.wantStatus != 0 && (!errors.As(err, &se) || se.StatusCode != tt.wantStatus):
				t.Errorf("Deliver error = %v, want a StatusError %d", err, tt.wantStatus)
			}
			if got := api.tokens(); !reflect.DeepEqual(got, tt.wantTokens) {
				t.Errorf("requests' tokens = %q, want %q", got, tt.wantTokens)
			}
			if !reflect.DeepEqual(sleeps, tt.wantSleeps) {
				t.Errorf("waits = %v, want %v", sleeps, tt.wantSleeps)
			}
		})
	}
}

// TestDeliverer_429RotationIsBounded: Tokens that hand out a new token on
// every call cannot keep a rate-limited delivery going: it tries as many
// tokens as a pool can hold, then falls back to Retry-After.
func TestDeliverer_429RotationIsBounded(t *testing.T) {
	api := newLimitingAPI(t, func(string) bool { return true })
	d := genesys.NewDeliverer(map[string]genesys.Endpoint{"acme": {APIURL: api.URL, IntegrationID: integrationID}},
		&everNew{}, genesys.DelivererConfig{})
	err := d.Deliver(context.Background(), textMessage())
	if se := (*genesys.StatusError)(nil); !errors.As(err, &se) || se.StatusCode != http.StatusTooManyRequests {
		t.Errorf("Deliver error = %v, want a StatusError 429", err)
	}
	if got, want := len(api.tokens()), 1+domain.MaxPoolSize; got != want {
		t.Errorf("requests = %d, want %d: the first token, then one per slot a pool can hold", got, want)
	}
}

// TestDeliverer_429MovesOnToAFreeTokenOfThePool: a pool of three tokens,
// Genesys allowing each 20 requests (without a window: nothing depends on
// timing), one of them spent already. 40 concurrent deliveries all go
// through without waiting: each answered 429 moves on to a token of the
// pool not yet limited for it.
func TestDeliverer_429MovesOnToAFreeTokenOfThePool(t *testing.T) {
	const pool, limit = 3, 20
	var sleeps atomic.Int64
	f := newPoolFixture(t, pool, limit, 0, genesys.DelivererConfig{
		MaxRetryAfter: time.Minute,
		Sleep: func(ctx context.Context, _ time.Duration) error {
			sleeps.Add(1)
			return ctx.Err()
		},
	})
	spent, err := f.tokens.Token(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	f.api.spend(spent)
	var wg sync.WaitGroup
	errs := make(chan error, (pool-1)*limit)
	for range (pool - 1) * limit {
		wg.Go(func() {
			if err := f.d.Deliver(t.Context(), textMessage()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Deliver: %v", err)
	}
	if n := sleeps.Load(); n != 0 {
		t.Errorf("waits = %d, want none", n)
	}
	if got := f.api.accepted.Load(); got != (pool-1)*limit {
		t.Errorf("accepted = %d, want %d", got, (pool-1)*limit)
	}
	if f.api.limited.Load() == 0 {
		t.Error("no 429 answered: the spent token was never tried")
	}
	if got := f.login.Calls(); got != pool {
		t.Errorf("login calls = %d, want one per token of the pool", got)
	}
}

func TestRegionURLs(t *testing.T) {
	tests := []struct {
		give, wantLogin, wantAPI string
	}{
		{"mypurecloud.com", "https://login.mypurecloud.com", "https://api.mypurecloud.com"},
		{"mypurecloud.ie", "https://login.mypurecloud.ie", "https://api.mypurecloud.ie"},
		{"usw2.pure.cloud", "https://login.usw2.pure.cloud", "https://api.usw2.pure.cloud"},
	}
	for _, tt := range tests {
		if got := genesys.LoginURL(tt.give); got != tt.wantLogin {
			t.Errorf("LoginURL(%q) = %q, want %q", tt.give, got, tt.wantLogin)
		}
		if got := genesys.APIURL(tt.give); got != tt.wantAPI {
			t.Errorf("APIURL(%q) = %q, want %q", tt.give, got, tt.wantAPI)
		}
	}
}

// TestDeliverer_BurstOf401sRefetchesOnce: deliveries in flight when the
// cached token was revoked all get 401 with it; the first to reject it
// drops it, the others find the fresh token cached and leave it, so the
// auth service is asked again once, not once per delivery.
func TestDeliverer_BurstOf401sRefetchesOnce(t *testing.T) {
	login := genesystest.NewLogin(t, "tok", map[string]string{"id": "secret"})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Header.Get("Authorization") == "Bearer tok-1" { // revoked
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(api.Close)
	tokens := domain.NewTokenCache(memory.NewTokenStore(), genesys.NewTokenFetcher(map[string]genesys.Credentials{
		"acme": {LoginURL: login.URL, ClientID: "id", ClientSecret: "secret"},
	}, nil), domain.TokenCacheConfig{})
	d := genesys.NewDeliverer(map[string]genesys.Endpoint{"acme": {APIURL: api.URL, IntegrationID: integrationID}}, tokens, genesys.DelivererConfig{})
	if _, err := tokens.Token(t.Context(), "acme"); err != nil { // tok-1, cached
		t.Fatal(err)
	}

	const deliveries = 30
	var wg sync.WaitGroup
	errs := make(chan error, deliveries)
	for range deliveries {
		wg.Go(func() {
			if err := d.Deliver(t.Context(), textMessage()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Deliver: %v", err)
	}
	// One refetch; a second only if a delivery read tok-1 just before the
	// first dropped it and deleted just after tok-2 was cached.
	if got := login.Calls(); got > 3 {
		t.Errorf("auth calls = %d for one revoked token, want 2 (3 at most)", got)
	}
}
