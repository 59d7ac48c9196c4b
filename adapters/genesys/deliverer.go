package genesys

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// Defaults for [DelivererConfig] fields left zero.
const (
	DefaultTimeout = 10 * time.Second
	// maxRateLimitRetries bounds how many 429 answers one delivery waits
	// out, whatever their Retry-After.
	maxRateLimitRetries = 3
	// maxTokenRotations bounds how many times one delivery moves on to
	// another token at once after a 429: as many as a pool can hold
	// (domain.MaxPoolSize), so that Tokens whose tokens change all the
	// time cannot keep a delivery going.
	maxTokenRotations = 64
)

// Tokens hands out each tenant's bearer token and drops it when Genesys
// rejects it. [domain.TokenCache] is one. It must be safe for concurrent
// use.
type Tokens interface {
	// Token returns a bearer token for the tenant. A tenant may have a pool
	// of tokens, handed out in turn, each with its own rate limit at
	// Genesys.
	Token(ctx context.Context, tenantID string) (string, error)
	// TokenExcept returns a token of the tenant's pool other than those in
	// except; ok is false when there is none (a pool of one, or every
	// token listed).
	TokenExcept(ctx context.Context, tenantID string, except []string) (token string, ok bool, err error)
	// Reject drops the tenant's cached token if it is still token.
	Reject(ctx context.Context, tenantID, token string) error
}

// Endpoint is where one tenant's messages go.
type Endpoint struct {
	// APIURL is the base URL of the tenant's API host, such as
	// https://api.mypurecloud.com.
	APIURL string
	// IntegrationID is the tenant's Open Messaging integration.
	IntegrationID string
}

// DelivererConfig tunes a [Deliverer].
type DelivererConfig struct {
	// Client sends the requests, through a copy of it that follows no
	// redirect, whatever its CheckRedirect says: a 3xx answer fails the
	// delivery like any other that is not a 2xx, and the bearer token and
	// the message go nowhere else. Nil means a client whose requests time
	// out after DefaultTimeout.
	Client *http.Client
	// MaxRetryAfter is the longest a delivery waits in all for Genesys's
	// Retry-After on 429 answers. A 429 whose wait would go past it, or
	// that gives no Retry-After, fails the delivery. Zero means never wait.
	MaxRetryAfter time.Duration
	// Sleep waits d, or until ctx ends. Nil means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// StatusError is the error for an answer from Genesys that is not a
// success.
type StatusError struct {
	// StatusCode is the HTTP status Genesys answered.
	StatusCode int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("genesys answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// Deliverer posts inbound messages to Genesys Cloud's Open Messaging API,
// with each tenant's bearer token. It is safe for concurrent use.
//
// A 401 drops the tenant's token and retries once with a fresh one. A 429
// is retried at once with another token of the tenant's pool, one that has
// had no 429 in this delivery ([Tokens.TokenExcept]: Genesys limits each
// token on its own); when there is none (a pool of one, every token of the
// pool limited, or none to be had) it is retried after its Retry-After,
// within MaxRetryAfter. Anything else that is not a 2xx (a 3xx included:
// redirects are not followed) fails the delivery with a [*StatusError], and
// any transport error or timeout fails it too.
type Deliverer struct {
	endpoints     map[string]Endpoint
	tokens        Tokens
	client        *http.Client
	maxRetryAfter time.Duration
	sleep         func(context.Context, time.Duration) error
	now           func() time.Time
}

var _ webhook.Deliverer = (*Deliverer)(nil)

// NewDeliverer returns a Deliverer for the tenants in endpoints, keyed by
// tenant id, taking tokens from tokens.
func NewDeliverer(endpoints map[string]Endpoint, tokens Tokens, cfg DelivererConfig) *Deliverer {
	d := &Deliverer{
		endpoints:     endpoints,
		tokens:        tokens,
		client:        cfg.Client,
		maxRetryAfter: cfg.MaxRetryAfter,
		sleep:         cfg.Sleep,
		now:           cfg.Now,
	}
	if d.client == nil {
		d.client = &http.Client{Timeout: DefaultTimeout}
	}
	d.client = noRedirects(d.client)
	if d.sleep == nil {
		d.sleep = sleep
	}
	if d.now == nil {
		d.now = time.Now
	}
	return d
}

// Deliver posts msg to its tenant's Open Messaging integration. A nil error
// means Genesys accepted it.
func (d *Deliverer) Deliver(ctx context.Context, msg webhook.Message) error {
	ep, ok := d.endpoints[msg.TenantID]
	if !ok {
		return fmt.Errorf("deliver message %s: tenant %s: %w", msg.MessageID, msg.TenantID, ErrUnknownTenant)
	}
	body, err := json.Marshal(newInboundMessage(msg, d.now()))
	if err != nil {
		return fmt.Errorf("deliver message %s of tenant %s: %w", msg.MessageID, msg.TenantID, err)
	}
	target := strings.TrimSuffix(ep.APIURL, "/") + "/api/v2/conversations/messages/" +
		url.PathEscape(ep.IntegrationID) + "/inbound/open/message"

	fail := func(err error) error {
		return fmt.Errorf("deliver message %s of tenant %s: %w", msg.MessageID, msg.TenantID, err)
	}

	tok, err := d.tokens.Token(ctx, msg.TenantID)
	if err != nil {
		return fail(err)
	}
	var (
		refreshed   bool
		rateLimited int
		waited      time.Duration
		rotations   int
		limited     []string // tokens answered 429 in this delivery
	)
	for {
		status, header, err := d.post(ctx, target, tok, body)
		if err != nil {
			return fail(err)
		}
		switch {
		case status >= 200 && status < 300:
			return nil
		case status == http.StatusUnauthorized && !refreshed:
			refreshed = true
			if err := d.tokens.Reject(ctx, msg.TenantID, tok); err != nil {
				return fail(err)
			}
		case status == http.StatusTooManyRequests:
			if !slices.Contains(limited, tok) {
				limited = append(limited, tok)
			}
			if rotations < maxTokenRotations {
				// An error here only means no other token: Retry-After.
				if next, ok, err := d.tokens.TokenExcept(ctx, msg.TenantID, limited); err == nil && ok {
					rotations++
					tok = next
					continue
				}
			}
			wait, ok := retryAfter(header.Get("Retry-After"), d.now())
			if rateLimited >= maxRateLimitRetries || !ok || waited+wait > d.maxRetryAfter {
				return fail(&StatusError{StatusCode: status})
			}
			rateLimited++
			waited += wait
			if err := d.sleep(ctx, wait); err != nil {
				return fail(fmt.Errorf("waiting out 429: %w", err))
			}
		default:
			return fail(&StatusError{StatusCode: status})
		}
		next, err := d.tokens.Token(ctx, msg.TenantID)
		if err != nil {
			return fail(err)
		}
		tok = next
	}
}

// post sends one request with tok and returns the answer's status and
// header; the body is read and discarded.
func (d *Deliverer) post(ctx context.Context, target, tok string, body []byte) (status int, header http.Header, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, nil
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 || secs > int64(24*time.Hour/time.Second) {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// inboundMessage is Open Messaging's normalized inbound message, as POSTed
// to /api/v2/conversations/messages/{integrationId}/inbound/open/message.
type inboundMessage struct {
	Channel inboundChannel `json:"channel"`
	Text    string         `json:"text"`
}

type inboundChannel struct {
	// MessageID is the provider's id of the message: the wamid.
	MessageID string        `json:"messageId"`
	From      fromRecipient `json:"from"`
	// Time is ISO-8601 in UTC, with milliseconds.
	Time string `json:"time"`
}

type fromRecipient struct {
	Nickname string `json:"nickname,omitempty"`
	// ID is the sender's WhatsApp id. WhatsApp ids are phone numbers
	// without the "+", so they are sent as opaque ids.
	ID     string `json:"id"`
	IDType string `json:"idType"`
}

// newInboundMessage builds the Open Messaging body for msg. A message with
// no text (media without a caption, a location, …) is sent with a
// placeholder naming its type, since Genesys takes no message with neither
// text nor content. A message without a timestamp is stamped now.
func newInboundMessage(msg webhook.Message, now time.Time) inboundMessage {
	at := msg.Timestamp
	if at.IsZero() {
		at = now
	}
	text := msg.Text
	if text == "" {
		kind := msg.Type
		if kind == "" {
			kind = "unknown"
		}
		text = "[" + kind + " message]"
	}
	return inboundMessage{
		Channel: inboundChannel{
			MessageID: msg.MessageID,
			From:      fromRecipient{Nickname: msg.Nickname, ID: msg.From, IDType: "Opaque"},
			Time:      at.UTC().Format("2006-01-02T15:04:05.000Z"),
		},
		Text: text,
	}
}
