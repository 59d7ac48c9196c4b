package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the webhook handler does, for Prometheus.
type Metrics struct {
	requests *prometheus.CounterVec
	delivery *prometheus.HistogramVec
	rejected *prometheus.CounterVec
	refused  *prometheus.CounterVec
	skipped  *prometheus.CounterVec
}

// Delivery results, the values of the result label of
// connector_delivery_duration_seconds.
const (
	resultDelivered = "delivered"
	resultFailed    = "failed"
)

// Why a request is rejected whole, the values of the reason label of
// connector_webhook_rejected_total. An unknown tenant is counted as
// unauthorized, as it is answered: the metrics do not tell it from a bad
// signature either.
const (
	rejectUnauthorized    = "unauthorized"
	rejectBusy            = "busy"
	rejectBodyTimeout     = "body_timeout"
	rejectBodyUnreadable  = "body_unreadable"
	rejectTooLarge        = "too_large"
	rejectNotUTF8         = "not_utf8"
	rejectMalformed       = "malformed"
	rejectTooManyMessages = "too_many_messages"
	rejectForeign         = "foreign"
)

var (
	rejectReasons = []string{rejectUnauthorized, rejectBusy, rejectBodyTimeout, rejectBodyUnreadable,
		rejectTooLarge, rejectNotUTF8, rejectMalformed, rejectTooManyMessages, rejectForeign}
	refuseReasons = []SkipReason{SkipWABAID, SkipPhoneNumberID, SkipMalformed}
	skipReasons   = []SkipReason{SkipMalformed, SkipBadID, SkipNoSender, SkipWABAID, SkipPhoneNumberID}
)

// NewMetrics makes the handler's metrics and registers them with reg:
//   - connector_webhook_requests_total{method,code}: webhook requests by
//     method and the status code answered;
//   - connector_delivery_duration_seconds{result}: how long each delivery
//     took, by result (delivered, failed);
//   - connector_webhook_rejected_total{reason}: POSTs rejected whole, by
//     reason: unauthorized (a bad signature or an unknown tenant), busy (too
//     many bodies being read), body_timeout, body_unreadable, too_large,
//     not_utf8, malformed, too_many_messages, foreign (nothing in it is the
//     tenant's);
//   - connector_webhook_refused_total{reason}: parts of signed payloads
//     that are not the tenant's, or not shown to be, by reason: waba_id (an
//     entry of another WhatsApp Business Account), phone_number_id (a
//     change for a phone number the tenant does not take), malformed (an
//     entry, or a change of the tenant's entries, whose fields do not have
//     the JSON types WhatsApp sends: see [Parse]);
//   - connector_webhook_skipped_messages_total{reason}: messages that can
//     never be delivered, skipped while the rest of their payload is
//     processed, by reason: malformed, bad_id, no_sender, waba_id,
//     phone_number_id (see [SkipReason]).
//
// A payload redelivered is counted again each time.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_webhook_requests_total",
			Help: "Webhook requests, by method and the status code answered.",
		}, []string{"method", "code"}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "connector_delivery_duration_seconds",
			Help:    "Time taken by each message delivery, by result (delivered, failed).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_webhook_rejected_total",
			Help: "Webhook POSTs rejected whole, by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_webhook_refused_total",
			Help: "Entries (reason waba_id) and changes (reason phone_number_id) of signed webhook payloads that are not the tenant's, and malformed entries and changes (reason malformed).",
		}, []string{"reason"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "connector_webhook_skipped_messages_total",
			Help: "Webhook messages that can never be delivered, skipped, by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.delivery, m.rejected, m.refused, m.skipped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("webhook: register metrics: %w", err)
		}
	}
	// Every label value shows from the first scrape, at zero.
	m.delivery.WithLabelValues(resultDelivered)
	m.delivery.WithLabelValues(resultFailed)
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range refuseReasons {
		m.refused.WithLabelValues(string(r))
	}
	for _, r := range skipReasons {
		m.skipped.WithLabelValues(string(r))
	}
	return m, nil
}

// The methods below do nothing on a nil *Metrics, so that the handler runs
// without metrics.

func (m *Metrics) observeDelivery(result string, seconds float64) {
	if m != nil {
		m.delivery.WithLabelValues(result).Observe(seconds)
	}
}

func (m *Metrics) reject(reason string) {
	if m != nil {
		m.rejected.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) refuse(reason SkipReason) {
	if m != nil {
		m.refused.WithLabelValues(string(reason)).Inc()
	}
}

func (m *Metrics) skip(reason SkipReason, n int) {
	if m != nil && n > 0 {
		m.skipped.WithLabelValues(string(reason)).Add(float64(n))
	}
}
