package ingest

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests           *prometheus.CounterVec
	alertsAccepted     prometheus.Counter
	heartbeatsAccepted prometheus.Counter
	duplicates         prometheus.Counter
	resent             prometheus.Counter
	publish            *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mimamori", Subsystem: "ingest", Name: "requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		alertsAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mimamori", Subsystem: "ingest", Name: "alerts_accepted_total",
			Help: "Alerts acknowledged by Kafka.",
		}),
		heartbeatsAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mimamori", Subsystem: "ingest", Name: "heartbeats_accepted_total",
			Help: "Heartbeats acknowledged by Kafka.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mimamori", Subsystem: "ingest", Name: "alerts_duplicate_in_batch_total",
			Help: "Alerts dropped because an alert with the same id came earlier in the same request.",
		}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mimamori", Subsystem: "ingest", Name: "alerts_resent_total",
			Help: "Alerts acknowledged without writing them again: the same id and content was stored before (a resend after a lost reply).",
		}),
		publish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "mimamori", Subsystem: "ingest", Name: "publish_duration_seconds",
			Help:    "Time until Kafka acknowledged (or failed) a request's events.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.requests, m.alertsAccepted, m.heartbeatsAccepted, m.duplicates, m.resent, m.publish)
	return m
}

func (s *server) countRequests(c *gin.Context) {
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	s.metrics.requests.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Inc()
}

func (m *metrics) observePublish(start time.Time, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.publish.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}
