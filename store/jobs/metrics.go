package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of an attempt (label values of blackbox_jobs_total).
const (
	resultOK          = "ok"          // done
	resultRetry       = "retry"       // failed; retried after a backoff
	resultDead        = "dead"        // failed; dead-lettered
	resultInterrupted = "interrupted" // stopped by shutdown; runs again, attempt not counted
)

type metrics struct {
	total *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "blackbox_jobs_total",
		Help: "Job attempts by kind and result (ok, retry, dead, interrupted).",
	}, []string{"kind", "result"})}
}

func (m *metrics) register(reg prometheus.Registerer, dead prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(m.total); err != nil {
		return fmt.Errorf("jobs metrics: %w (one Client per registry)", err)
	}
	if err := reg.Register(dead); err != nil {
		reg.Unregister(m.total)
		return fmt.Errorf("jobs metrics: %w (one Client per registry)", err)
	}
	return nil
}

// addKind makes a kind's series exist at zero, so rates work from the start.
func (m *metrics) addKind(kind string) {
	for _, r := range []string{resultOK, resultRetry, resultDead, resultInterrupted} {
		m.total.WithLabelValues(kind, r)
	}
}

func (m *metrics) count(kind, result string) { m.total.WithLabelValues(kind, result).Inc() }

// deadCollector reports blackbox_jobs_dead from the database at scrape time:
// dead letters are made and retried by every node and by the CLI, so only
// the database knows the number.
type deadCollector struct{ c *Client }

var deadDesc = prometheus.NewDesc("blackbox_jobs_dead",
	"Dead-lettered jobs (attempts exhausted or a permanent error) in the database, all nodes and tenants.", nil, nil)

func (d deadCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deadDesc }

func (d deadCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := d.c.DeadCount(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(deadDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(n))
}
