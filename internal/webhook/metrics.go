package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the webhook handler does, for Prometheus.
type Metrics struct {
	requests *prometheus.CounterVec
	delivery *prometheus.HistogramVec
}

// Delivery results, the values of the result label of
// connector_delivery_duration_seconds.
const (
	resultDelivered = "delivered"
	resultFailed    = "failed"
)

// NewMetrics makes the handler's metrics and registers them with reg:
//   - connector_webhook_requests_total{method,code}: webhook requests by
//     method and the status code answered;
//   - connector_delivery_duration_seconds{result}: how long each delivery
//     took, by result (delivered, failed).
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
	}
	for _, c := range []prometheus.Collector{m.requests, m.delivery} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("webhook: register metrics: %w", err)
		}
	}
	// Both results show from the first scrape, at zero.
	m.delivery.WithLabelValues(resultDelivered)
	m.delivery.WithLabelValues(resultFailed)
	return m, nil
}
