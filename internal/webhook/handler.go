package webhook

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/redact"
)

// MaxBodyBytes is the largest webhook body accepted: 1 MiB.
const MaxBodyBytes = 1 << 20

// Defaults for the zero values of [Config].
const (
	// DefaultSettleTimeout is the SettleTimeout used when
	// [Config.SettleTimeout] is zero.
	DefaultSettleTimeout = 5 * time.Second
	// DefaultRetryAfter is the RetryAfter used when [Config.RetryAfter] is
	// zero.
	DefaultRetryAfter = 5 * time.Second
	// DefaultMaxInflightBodies is the MaxInflightBodies used when
	// [Config.MaxInflightBodies] is zero.
	DefaultMaxInflightBodies = 64
	// DefaultBodyTimeout is the BodyTimeout used when [Config.BodyTimeout]
	// is zero.
	DefaultBodyTimeout = 10 * time.Second
	// DefaultRequestTimeout is the RequestTimeout used when
	// [Config.RequestTimeout] is zero.
	DefaultRequestTimeout = 20 * time.Second
	// DefaultMaxMessages is the MaxMessages used when [Config.MaxMessages]
	// is zero.
	DefaultMaxMessages = 1000
)

// Claimer claims a message before it is processed; [domain.Deduplicator] is
// one.
type Claimer interface {
	Claim(ctx context.Context, tenantID, messageID string) (*domain.Claim, error)
}

// Config configures a [Handler].
type Config struct {
	// Tenants are the tenants' webhook settings, keyed by tenant id, the
	// {tenantId} of the webhook URL. A tenant not in it is unknown. The
	// handler keeps a copy.
	Tenants map[string]Tenant
	// Dedupe claims each message before delivery.
	Dedupe Claimer
	// Deliverer hands each new message on.
	Deliverer Deliverer
	// Logger logs what happens to each request. Nil means no logging.
	// Warnings about bad requests are sampled: each is logged at most once
	// every 10 seconds.
	Logger *zap.Logger
	// Metrics counts requests and times deliveries. Nil means no metrics.
	Metrics *Metrics
	// SettleTimeout bounds committing or releasing a claim once its
	// delivery is over (or panicked), even when the request was cancelled.
	// Zero means DefaultSettleTimeout.
	SettleTimeout time.Duration
	// RetryAfter is the delay a 503 answer asks Meta to wait before it
	// redelivers, sent as a Retry-After header in whole seconds (at least
	// one). Zero means DefaultRetryAfter.
	RetryAfter time.Duration
	// MaxInflightBodies caps the webhook bodies being read at once; beyond
	// it a POST is answered 503, with Retry-After and Connection: close,
	// without its body being read. Zero means DefaultMaxInflightBodies.
	MaxInflightBodies int
	// BodyTimeout bounds reading one body, as a read deadline on the
	// connection: a body not read by then is answered 408. A client that
	// trickles its body holds one of the MaxInflightBodies slots that long
	// before it is authenticated (see [Handler]). Zero means
	// DefaultBodyTimeout.
	BodyTimeout time.Duration
	// RequestTimeout bounds processing one POST once its body is read: the
	// messages not started by then are deferred (503, for Meta to
	// redeliver). The delivery in progress when it passes is not
	// cancelled: each delivery runs on a context that the request's
	// deadline and cancellation do not reach, bounded on its own by
	// RequestTimeout from its start, and its claim is then committed or
	// released as always, within SettleTimeout. One POST is so processed
	// within about twice RequestTimeout plus SettleTimeout. Zero means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxMessages caps the messages in one body: a body with more is
	// answered 413 and nothing in it is claimed. Zero means
	// DefaultMaxMessages.
	MaxMessages int
}

// printedConfig is a [Config] as it prints and encodes: its tenants, which
// mask their own secrets, the types of its Dedupe and Deliverer, and its
// limits as given, zero for a default; not its Logger and Metrics.
type printedConfig struct {
	Tenants                     map[string]Tenant
	Dedupe, Deliverer           string
	SettleTimeout, RetryAfter   time.Duration
	MaxInflightBodies           int
	BodyTimeout, RequestTimeout time.Duration
	MaxMessages                 int
}

func (c Config) printed() printedConfig {
	return printedConfig{
		Tenants: c.Tenants, Dedupe: fmt.Sprintf("%T", c.Dedupe), Deliverer: fmt.Sprintf("%T", c.Deliverer),
		SettleTimeout: c.SettleTimeout, RetryAfter: c.RetryAfter, MaxInflightBodies: c.MaxInflightBodies,
		BodyTimeout: c.BodyTimeout, RequestTimeout: c.RequestTimeout, MaxMessages: c.MaxMessages,
	}
}

// String formats c as %+v would, its tenants with their secrets masked
// ([Tenant.String]) and its Dedupe and Deliverer as their types.
func (c Config) String() string { return "webhook.Config" + fmt.Sprintf("%+v", c.printed()) }

// GoString formats c for %#v as [Config.String] does.
func (c Config) GoString() string { return redact.GoSyntax("webhook.Config", c.printed()) }

// Format formats c for every verb as [Tenant.Format] formats a tenant.
func (c Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String, c.GoString) }

// MarshalJSON encodes c as [Config.String] formats it.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.printed()) }

// Handler serves tenants' WhatsApp webhooks at /webhook/{tenantId}.
//
// GET answers Meta's subscription handshake: 200 and hub.challenge for
// hub.mode=subscribe with the tenant's verify token, 403 for anything else,
// an unknown tenant included.
//
// POST receives messages. Its answer, in the order it is decided:
//   - 401 {"error":"unauthorized"} when the X-Hub-Signature-256 header is
//     missing or cannot be a signature, without the body being read (and
//     Connection: close);
//   - 413 with Connection: close, without the body being read, when its
//     Content-Length is over [MaxBodyBytes];
//   - 503 with Retry-After and Connection: close, without the body being
//     read, when MaxInflightBodies bodies are being read already;
//   - 408 when the body is not read within BodyTimeout, 413 when it is over
//     [MaxBodyBytes], 400 when it cannot be read otherwise (each with
//     Connection: close);
//   - 401 {"error":"unauthorized"} when the signature is not the body's
//     under the tenant's app secret, and the very same answer for a tenant
//     that is unknown: its body is read under the same bounds and checked
//     against a random key, so that no answer tells an unknown tenant from
//     a known one;
//   - 400 when the body is not valid UTF-8, or not a WhatsApp Business
//     Account payload (see [Parse]);
//   - 413 when it holds more than MaxMessages messages;
//   - 403 {"error":"forbidden"} when none of its entries is the tenant's:
//     none is for one of its WABAIDs or, when it has PhoneNumberIDs, none has
//     a change for one of them (a body signed for another tenant and
//     replayed here, say).
//
// Nothing is claimed or delivered for any of these. Otherwise the messages
// of the tenant's entries and changes are processed in payload order; the
// other entries and changes are refused, and their messages skipped, as are
// the entries and changes of the wrong JSON types (see [Parse]) and the
// messages that can never be delivered (a bad id, no sender): they are
// counted and logged, and do not hold back the rest. Each message is
// claimed, delivered, then committed. A message already delivered (its claim
// is done) is skipped as a duplicate. The request is answered 503, with a
// Retry-After header, so that Meta redelivers it and no message is lost,
// when a delivery failed or panicked (its claim is released, on a context
// detached from the request's, within the settle timeout), when claiming
// failed, when a message is in flight: claimed by another request that has
// not committed it yet, or when RequestTimeout passed (or the request was
// cancelled) before every message was started; a delivery under way then
// is not cancelled: it finishes, bounded on its own (see
// [Config.RequestTimeout]), and its claim is settled as it went. An
// in-flight message is not skipped as a duplicate because its holder may
// never commit it (its delivery fails and its release fails too, or its
// process dies): Meta's redelivery finds it done (200), or free again once
// the holder released it or its claim expired, and delivers it then. The
// request stops at the first such message; the ones after it wait for the
// redelivery, so that their order is kept. Otherwise it is answered 200.
// The answers 200 and 503 carry a [Result].
//
// A panicking deliverer is treated as a failed delivery: the panic is
// recovered and logged with its stack, the claim released, and the request
// answered 503, so that one bad message does not leave its claim held until
// it expires.
//
// What a request carries is logged only when it is a configured tenant's id
// or passes an id syntax check (message ids as up to 128 bytes of printable
// ASCII, WABA and phone number ids as up to 64 digits, message types as up
// to 32 lower-case letters and underscores), and otherwise as its length;
// a body never is.
//
// Before a POST is authenticated, a client can hold one of the
// MaxInflightBodies slots for up to BodyTimeout by sending its body slowly,
// and so, with enough connections, have every other POST answered 503.
// Facing the internet, the handler belongs behind a reverse proxy that
// buffers request bodies before passing them on, or behind an allowlist of
// the addresses Meta sends webhooks from.
//
// It is safe for concurrent use.
type Handler struct {
	tenants map[string]*tenant
	// decoy is the key the bodies sent to unknown tenants are checked
	// against, so that they take the path of a known tenant's.
	decoy   []byte
	dedupe  Claimer
	deliver Deliverer
	log     *zap.Logger
	// warn is log, sampled: for warnings about bad requests.
	warn           *zap.Logger
	metrics        *Metrics
	settle         time.Duration
	bodyTimeout    time.Duration
	requestTimeout time.Duration
	maxMessages    int
	// bodies holds a token for each body being read.
	bodies chan struct{}
	// retryAfter is the Retry-After header value of 503 answers.
	retryAfter string
	handler    http.Handler
}

// NewHandler returns a Handler configured by cfg.
func NewHandler(cfg Config) *Handler {
	h := &Handler{
		tenants:        make(map[string]*tenant, len(cfg.Tenants)),
		decoy:          make([]byte, 32),
		dedupe:         cfg.Dedupe,
		deliver:        cfg.Deliverer,
		log:            cfg.Logger,
		metrics:        cfg.Metrics,
		settle:         orDefault(cfg.SettleTimeout, DefaultSettleTimeout),
		bodyTimeout:    orDefault(cfg.BodyTimeout, DefaultBodyTimeout),
		requestTimeout: orDefault(cfg.RequestTimeout, DefaultRequestTimeout),
		maxMessages:    orDefault(cfg.MaxMessages, DefaultMaxMessages),
		bodies:         make(chan struct{}, orDefault(cfg.MaxInflightBodies, DefaultMaxInflightBodies)),
	}
	for id, t := range cfg.Tenants {
		h.tenants[id] = newTenant(t)
	}
	_, _ = rand.Read(h.decoy) // never fails: see crypto/rand.Read
	if h.log == nil {
		h.log = zap.NewNop()
	}
	h.warn = sampled(h.log)
	retryAfter := orDefault(cfg.RetryAfter, DefaultRetryAfter)
	h.retryAfter = strconv.FormatInt(max(1, int64((retryAfter+time.Second-1)/time.Second)), 10)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /webhook/{tenantId}", h.verify)
	mux.HandleFunc("POST /webhook/{tenantId}", h.receive)
	h.handler = mux
	if h.metrics != nil {
		h.handler = promhttp.InstrumentHandlerCounter(h.metrics.requests, mux)
	}
	return h
}

// orDefault returns v, or def when v is zero or less.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// ServeHTTP serves the webhook routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handler.ServeHTTP(w, r) }

// verify answers Meta's subscription handshake: hub.mode=subscribe with the
// tenant's verify token gets hub.challenge back. Anything else, an unknown
// tenant included, is refused with 403.
func (h *Handler) verify(w http.ResponseWriter, r *http.Request) {
	tenantID := r.PathValue("tenantId")
	t, ok := h.tenants[tenantID]
	if !ok {
		h.warn.Warn("webhook for unknown tenant", h.tenantField(tenantID), zap.String("method", r.Method))
		writeError(w, http.StatusForbidden, "verification refused")
		return
	}
	q := r.URL.Query()
	if t.verifyToken == "" || q.Get("hub.mode") != "subscribe" ||
		subtle.ConstantTimeCompare([]byte(q.Get("hub.verify_token")), []byte(t.verifyToken)) != 1 {
		h.warn.Warn("webhook verification refused", h.tenantField(tenantID))
		writeError(w, http.StatusForbidden, "verification refused")
		return
	}
	h.log.Info("webhook verified", h.tenantField(tenantID))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.WriteString(w, q.Get("hub.challenge"))
}

// Result is the JSON body of an answer to a webhook POST.
type Result struct {
	// Delivered counts the messages delivered by this request.
	Delivered int `json:"delivered"`
	// Duplicates counts the messages skipped because they were delivered
	// already.
	Duplicates int `json:"duplicates"`
	// InFlight counts the messages claimed by another request that had not
	// committed them yet (at most one: the request stops there). They are
	// left for Meta's redelivery.
	InFlight int `json:"in_flight"`
	// Failed counts the messages whose claim or delivery failed (at most
	// one: the request stops at the first failure).
	Failed int `json:"failed"`
	// Deferred counts the messages left for Meta's redelivery, not started:
	// those after a failed or in-flight one, so that their order is kept,
	// and those not started when the request's time was up.
	Deferred int `json:"deferred"`
	// Skipped counts the messages that are never delivered: those that
	// cannot be (a bad id, no sender), and those of entries and changes
	// that are not the tenant's. The messages of an entry or change of the
	// wrong JSON types are unknown, and not counted.
	Skipped int `json:"skipped"`
	// Statuses counts the receipts acknowledged.
	Statuses int `json:"statuses"`
}

func (h *Handler) receive(w http.ResponseWriter, r *http.Request) {
	tenantID := r.PathValue("tenantId")
	t, known := h.tenants[tenantID]
	sig := r.Header.Get(SignatureHeader)
	if !wellFormedSignature(sig) {
		h.warnUnauthorized(tenantID, known, sig != "")
		w.Header().Set("Connection", "close")
		h.reject(w, http.StatusUnauthorized, rejectUnauthorized, "unauthorized")
		return
	}
	if r.ContentLength > MaxBodyBytes {
		h.warn.Warn("webhook body too large", h.tenantField(tenantID),
			zap.Int64("content_length", r.ContentLength), zap.Int64("limit", MaxBodyBytes))
		w.Header().Set("Connection", "close")
		h.reject(w, http.StatusRequestEntityTooLarge, rejectTooLarge, "body too large")
		return
	}
	body, ok := h.readBody(w, r, tenantID)
	if !ok {
		return
	}
	secret := h.decoy
	if known {
		secret = t.appSecret
	}
	if !ValidSignature(secret, body, sig) || !known {
		h.warnUnauthorized(tenantID, known, true)
		h.reject(w, http.StatusUnauthorized, rejectUnauthorized, "unauthorized")
		return
	}
	if !utf8.Valid(body) {
		h.warn.Warn("webhook body not UTF-8", h.tenantField(tenantID), zap.Int("body_len", len(body)))
		h.reject(w, http.StatusBadRequest, rejectNotUTF8, "body not UTF-8")
		return
	}
	batch, err := Parse(body)
	if err != nil {
		// Parse's errors never quote the payload.
		h.warn.Warn("webhook payload malformed", h.tenantField(tenantID), zap.Error(err))
		h.reject(w, http.StatusBadRequest, rejectMalformed, "malformed payload")
		return
	}
	if n := batch.MessageCount(); n > h.maxMessages {
		h.warn.Warn("webhook payload has too many messages", h.tenantField(tenantID),
			zap.Int("messages", n), zap.Int("limit", h.maxMessages))
		h.reject(w, http.StatusRequestEntityTooLarge, rejectTooManyMessages, "too many messages")
		return
	}
	a := h.admit(t, tenantID, batch)
	if !a.owned {
		h.warn.Warn("webhook payload refused: nothing in it is the tenant's", h.tenantField(tenantID),
			zap.Int("entries", len(batch.Entries)))
		h.reject(w, http.StatusForbidden, rejectForeign, "forbidden")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.requestTimeout)
	defer cancel()
	res := Result{Skipped: a.skipped, Statuses: a.statuses}
	h.process(ctx, tenantID, a.messages, &res)
	status := http.StatusOK
	if res.Failed > 0 || res.InFlight > 0 || res.Deferred > 0 {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", h.retryAfter)
	}
	writeJSON(w, status, res)
}

// warnUnauthorized logs, sampled, a POST refused 401.
func (h *Handler) warnUnauthorized(tenantID string, known, signed bool) {
	if !known {
		h.warn.Warn("webhook for unknown tenant", h.tenantField(tenantID), zap.String("method", http.MethodPost))
		return
	}
	h.warn.Warn("webhook signature invalid", h.tenantField(tenantID), zap.Bool("signature_present", signed))
}

// readBody reads r's body, at most MaxBodyBytes of it, while fewer than
// MaxInflightBodies others are read, and within BodyTimeout. When it cannot,
// it answers the request itself, asking for the connection to be closed
// since what is left of the body is not read, and reports false.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, tenantID string) ([]byte, bool) {
	select {
	case h.bodies <- struct{}{}:
		defer func() { <-h.bodies }()
	default:
		h.warn.Warn("webhook busy: too many bodies being read", h.tenantField(tenantID), zap.Int("limit", cap(h.bodies)))
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", h.retryAfter)
		h.reject(w, http.StatusServiceUnavailable, rejectBusy, "busy")
		return nil, false
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(h.bodyTimeout)); err != nil {
		// A ResponseWriter that cannot set one, such as a wrapper without
		// Unwrap: the server's own ReadTimeout is the only bound left.
		h.warn.Warn("webhook body read without a deadline", zap.Error(err))
	} else {
		// The deadline is for the body only, not for what the server reads
		// next on the connection.
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil {
		return body, true
	}
	w.Header().Set("Connection", "close")
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		h.warn.Warn("webhook body too large", h.tenantField(tenantID), zap.Int64("limit", tooBig.Limit))
		h.reject(w, http.StatusRequestEntityTooLarge, rejectTooLarge, "body too large")
	case errors.Is(err, os.ErrDeadlineExceeded):
		h.warn.Warn("webhook body timed out", h.tenantField(tenantID),
			zap.Duration("timeout", h.bodyTimeout), zap.Int("read", len(body)))
		h.reject(w, http.StatusRequestTimeout, rejectBodyTimeout, "body timeout")
	default:
		h.warn.Warn("webhook body unreadable", h.tenantField(tenantID), zap.Error(err))
		h.reject(w, http.StatusBadRequest, rejectBodyUnreadable, "body unreadable")
	}
	return nil, false
}

// reject answers a POST rejected whole with status and msg, counted under
// reason.
func (h *Handler) reject(w http.ResponseWriter, status int, reason, msg string) {
	h.metrics.reject(reason)
	writeError(w, status, msg)
}

// process claims, delivers and settles each message in order, into res. At
// the first message that failed or is in flight elsewhere it stops: the rest
// waits for Meta's redelivery, which skips what was delivered and keeps the
// order. It starts no message once ctx is done.
func (h *Handler) process(ctx context.Context, tenantID string, msgs []Message, res *Result) {
	for i, msg := range msgs {
		if err := ctx.Err(); err != nil {
			res.Deferred = len(msgs) - i
			h.log.Warn("request over before its last messages started; they are left for redelivery", h.tenantField(tenantID),
				zap.Int("deferred", res.Deferred), zap.Error(err))
			return
		}
		msg.TenantID = tenantID
		if !h.processOne(ctx, msg, res) {
			res.Deferred = len(msgs) - i - 1
			return
		}
	}
}

// processOne handles one message and reports whether the next may go on.
// ctx bounds its claim; its delivery runs on a context detached from ctx.
func (h *Handler) processOne(ctx context.Context, msg Message, res *Result) bool {
	fields := []zap.Field{h.tenantField(msg.TenantID), messageIDField(msg.MessageID)}
	claim, err := h.dedupe.Claim(ctx, msg.TenantID, msg.MessageID)
	if err != nil {
		h.log.Error("claim failed", append(fields, zap.Error(err))...)
		res.Failed++
		return false
	}
	switch st := claim.Status(); st {
	case domain.ClaimNew:
	case domain.ClaimDone:
		h.log.Info("duplicate skipped", append(fields, zap.Stringer("claim", st))...)
		res.Duplicates++
		return true
	default: // domain.ClaimInFlight: not a duplicate until its holder commits
		h.log.Info("message in flight elsewhere; left for redelivery", append(fields, zap.Stringer("claim", st))...)
		res.InFlight++
		return false
	}

	// The delivery is not cut short by the request's deadline: once
	// started, it finishes and its claim is settled as it went.
	deliverCtx, cancelDeliver := context.WithTimeout(context.WithoutCancel(ctx), h.requestTimeout)
	start := time.Now()
	err = h.deliverRecovered(deliverCtx, msg, fields)
	took := time.Since(start)
	cancelDeliver()

	settleCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.settle)
	defer cancel()
	if err != nil {
		h.metrics.observeDelivery(resultFailed, took.Seconds())
		h.log.Error("delivery failed; claim released for redelivery",
			append(fields, zap.Duration("took", took), zap.Error(err))...)
		if rerr := claim.Release(settleCtx); rerr != nil {
			h.log.Warn("release failed", append(fields, zap.Error(rerr))...)
		}
		res.Failed++
		return false
	}
	h.metrics.observeDelivery(resultDelivered, took.Seconds())
	h.log.Info("message delivered", append(fields, zap.Duration("took", took))...)
	if cerr := claim.Commit(settleCtx); cerr != nil {
		// Delivered all the same; a redelivery may deliver it once more.
		h.log.Warn("commit failed", append(fields, zap.Error(cerr))...)
	}
	res.Delivered++
	return true
}

// deliverRecovered delivers msg, turning a panic of the deliverer into an
// error, so that the caller releases the claim as for any failed delivery.
func (h *Handler) deliverRecovered(ctx context.Context, msg Message, fields []zap.Field) (err error) {
	defer func() {
		if v := recover(); v != nil {
			h.log.Error("delivery panicked", append(fields, zap.String("panic", fmt.Sprint(v)),
				zap.ByteString("stack", debug.Stack()))...)
			err = fmt.Errorf("webhook: deliverer panicked: %v", v)
		}
	}()
	return h.deliver.Deliver(ctx, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
