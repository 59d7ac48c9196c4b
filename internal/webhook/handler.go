package webhook

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/domain"
)

// MaxBodyBytes is the largest webhook body accepted: 1 MiB.
const MaxBodyBytes = 1 << 20

// DefaultSettleTimeout is the SettleTimeout used when [Config.SettleTimeout]
// is zero.
const DefaultSettleTimeout = 5 * time.Second

// DefaultRetryAfter is the RetryAfter used when [Config.RetryAfter] is zero.
const DefaultRetryAfter = 5 * time.Second

// Claimer claims a message before it is processed; [domain.Deduplicator] is
// one.
type Claimer interface {
	Claim(ctx context.Context, tenantID, messageID string) (*domain.Claim, error)
}

// Config configures a [Handler].
type Config struct {
	// AppSecret is the Meta app secret that webhook bodies are signed with.
	// It is a secret: never log it.
	AppSecret []byte
	// VerifyTokens maps each tenant id to the verify token that Meta's
	// subscription handshake must present. A tenant not in it is unknown.
	VerifyTokens map[string]string
	// Dedupe claims each message before delivery.
	Dedupe Claimer
	// Deliverer hands each new message on.
	Deliverer Deliverer
	// Logger logs what happens to each request. Nil means no logging.
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
}

// Handler serves a tenant's WhatsApp webhook at /webhook/{tenantId}:
//   - GET answers Meta's subscription handshake: 200 and hub.challenge for
//     hub.mode=subscribe with the tenant's verify token, 403 for anything
//     else, an unknown tenant included;
//   - POST receives messages, in payload order. Each message is claimed,
//     delivered, then committed. A message already delivered (its claim is
//     done) is skipped as a duplicate. The request is answered 503, with a
//     Retry-After header, so that Meta redelivers it and no message is lost,
//     when a delivery failed or panicked (its claim is released, on a
//     context detached from the request's, within the settle timeout), when
//     claiming failed, or when a message is in flight: claimed by another
//     request that has not committed it yet. An in-flight message is not
//     skipped as a duplicate because its holder may never commit it (its
//     delivery fails and its release fails too, or its process dies): Meta's
//     redelivery finds it done (200), or free again once the holder released
//     it or its claim expired, and delivers it then. The request stops at
//     the first such message; the ones after it wait for the redelivery, so
//     that their order is kept. Otherwise it is answered 200.
//
// A panicking deliverer is treated as a failed delivery: the panic is
// recovered and logged with its stack, the claim released, and the request
// answered 503, so that one bad message does not leave its claim held until
// it expires.
//
// It is safe for concurrent use.
type Handler struct {
	secret  []byte
	tokens  map[string]string
	dedupe  Claimer
	deliver Deliverer
	log     *zap.Logger
	metrics *Metrics
	settle  time.Duration
	// retryAfter is the Retry-After header value of 503 answers.
	retryAfter string
	handler    http.Handler
}

// NewHandler returns a Handler configured by cfg.
func NewHandler(cfg Config) *Handler {
	h := &Handler{
		secret:  cfg.AppSecret,
		tokens:  cfg.VerifyTokens,
		dedupe:  cfg.Dedupe,
		deliver: cfg.Deliverer,
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		settle:  cfg.SettleTimeout,
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	if h.settle <= 0 {
		h.settle = DefaultSettleTimeout
	}
	retryAfter := cfg.RetryAfter
	if retryAfter <= 0 {
		retryAfter = DefaultRetryAfter
	}
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

// ServeHTTP serves the webhook routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handler.ServeHTTP(w, r) }

// verify answers Meta's subscription handshake: hub.mode=subscribe with the
// tenant's verify token gets hub.challenge back. Anything else, an unknown
// tenant included, is refused with 403.
func (h *Handler) verify(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenantId")
	want, ok := h.tokens[tenant]
	if !ok {
		h.log.Warn("webhook for unknown tenant", zap.String("tenant", tenant), zap.String("method", r.Method))
		writeError(w, http.StatusForbidden, "verification refused")
		return
	}
	q := r.URL.Query()
	if want == "" || q.Get("hub.mode") != "subscribe" ||
		subtle.ConstantTimeCompare([]byte(q.Get("hub.verify_token")), []byte(want)) != 1 {
		h.log.Warn("webhook verification refused", zap.String("tenant", tenant))
		writeError(w, http.StatusForbidden, "verification refused")
		return
	}
	h.log.Info("webhook verified", zap.String("tenant", tenant))
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
	// Deferred counts the messages after a failed or in-flight one, left
	// for Meta's redelivery so that their order is kept.
	Deferred int `json:"deferred"`
	// Statuses counts the receipts acknowledged.
	Statuses int `json:"statuses"`
}

func (h *Handler) receive(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenantId")
	if _, ok := h.tokens[tenant]; !ok {
		h.log.Warn("webhook for unknown tenant", zap.String("tenant", tenant), zap.String("method", r.Method))
		writeError(w, http.StatusNotFound, "unknown tenant")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.log.Warn("webhook body too large", zap.String("tenant", tenant), zap.Int64("limit", tooBig.Limit))
			writeError(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		h.log.Warn("webhook body unreadable", zap.String("tenant", tenant), zap.Error(err))
		writeError(w, http.StatusBadRequest, "body unreadable")
		return
	}
	if !ValidSignature(h.secret, body, r.Header.Get(SignatureHeader)) {
		h.log.Warn("webhook signature invalid", zap.String("tenant", tenant),
			zap.Bool("signature_present", r.Header.Get(SignatureHeader) != ""))
		writeError(w, http.StatusUnauthorized, "invalid signature")
		return
	}
	batch, err := Parse(body)
	if err != nil {
		h.log.Warn("webhook payload malformed", zap.String("tenant", tenant), zap.Error(err))
		writeError(w, http.StatusBadRequest, "malformed payload")
		return
	}
	res := h.process(r.Context(), tenant, batch)
	status := http.StatusOK
	if res.Failed > 0 || res.InFlight > 0 {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", h.retryAfter)
	}
	writeJSON(w, status, res)
}

// process claims, delivers and settles each message in order. At the first
// message that failed or is in flight elsewhere it stops: the rest waits for
// Meta's redelivery, which skips what was delivered and keeps the order.
func (h *Handler) process(ctx context.Context, tenant string, batch Batch) Result {
	res := Result{Statuses: batch.Statuses}
	for i, msg := range batch.Messages {
		msg.TenantID = tenant
		if !h.processOne(ctx, msg, &res) {
			res.Deferred = len(batch.Messages) - i - 1
			break
		}
	}
	return res
}

// processOne handles one message and reports whether the next may go on.
func (h *Handler) processOne(ctx context.Context, msg Message, res *Result) bool {
	fields := []zap.Field{zap.String("tenant", msg.TenantID), zap.String("message_id", msg.MessageID)}
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

	start := time.Now()
	err = h.deliverRecovered(ctx, msg, fields)
	took := time.Since(start)

	settleCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.settle)
	defer cancel()
	if err != nil {
		h.observe(resultFailed, took)
		h.log.Error("delivery failed; claim released for redelivery",
			append(fields, zap.Duration("took", took), zap.Error(err))...)
		if rerr := claim.Release(settleCtx); rerr != nil {
			h.log.Warn("release failed", append(fields, zap.Error(rerr))...)
		}
		res.Failed++
		return false
	}
	h.observe(resultDelivered, took)
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

func (h *Handler) observe(result string, took time.Duration) {
	if h.metrics != nil {
		h.metrics.delivery.WithLabelValues(result).Observe(took.Seconds())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
