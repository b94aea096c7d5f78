package policy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric label values beyond the reason codes.
const (
	resultAllow  = "allow"
	resultDeny   = "deny"
	resultDryRun = "dry_run" // allowed, but the policy would have refused it
	resultError  = "error"

	reasonOK        = "ok"
	reasonEmergency = "emergency"
	reasonInbound   = "inbound"
)

type metrics struct {
	decisions   *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	suspensions *prometheus.CounterVec
	latency     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blackbox_policy_decisions_total",
			Help: "Policy decisions by result (allow, deny, dry_run, error) and reason code.",
		}, []string{"result", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blackbox_policy_reloads_total",
			Help: "Policy file loads by result (ok, error); a refused file leaves the previous policy serving.",
		}, []string{"result"}),
		suspensions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blackbox_policy_suspensions_total",
			Help: "Anomaly suspensions stored, by subject (user, tenant) and cause.",
		}, []string{"subject", "cause"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blackbox_policy_decision_seconds",
			Help:    "Time to decide an outbound call, counters included.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25},
		}),
	}
	// Zero series up front so a dashboard shows every reason before it happens.
	for _, r := range Reasons {
		m.decisions.WithLabelValues(resultDeny, string(r))
	}
	m.decisions.WithLabelValues(resultAllow, reasonOK)
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.decisions, m.reloads, m.suspensions, m.latency} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return nil, err
		}
	}
	return m, nil
}
