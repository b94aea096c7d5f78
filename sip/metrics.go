package sip

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the signalling counters. Labels are bounded: methods are
// folded to the ones Blackbox knows, never a call id, number or address.
type metrics struct {
	requests      *prometheus.CounterVec
	responses     *prometheus.CounterVec
	callsActive   *prometheus.GaugeVec
	callsTotal    *prometheus.CounterVec
	authFailures  prometheus.Counter
	registrations prometheus.Collector
	consent       *prometheus.CounterVec
}

// newMetrics registers the signalling metrics; activeBindings counts live
// registrations in the store, read at scrape time (the store is shared by
// every node, so that is the true figure and no REGISTER pays for it).
func newMetrics(reg prometheus.Registerer, activeBindings func(context.Context) (int64, error)) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blackbox_sip_requests_total",
			Help: "SIP requests received, by method (unknown methods count as OTHER).",
		}, []string{"method"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blackbox_sip_responses_total",
			Help: "SIP responses sent by Blackbox, by request method and status class (1xx..6xx).",
		}, []string{"method", "code_class"}),
		callsActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "blackbox_calls_active",
			Help: "Calls in progress on this node, by direction.",
		}, []string{"direction"}),
		callsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blackbox_calls_total",
			Help: "Calls ended, by direction and result (answered, busy, no_answer, cancelled, rejected, failed).",
		}, []string{"direction", "result"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blackbox_sip_auth_failures_total",
			Help: "Digest authentications refused (wrong password or unknown user, counted alike).",
		}),
		registrations: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "blackbox_registrations_active",
			Help: "Live registrations (bindings) in the store, across tenants.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := activeBindings(ctx)
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		}),
		consent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blackbox_consent_events_total",
			Help: "Consent prompts, by mode and result.",
		}, []string{"mode", "result"}),
	}
	for _, d := range []string{"inbound", "outbound"} {
		m.callsActive.WithLabelValues(d)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.responses, m.callsActive, m.callsTotal, m.authFailures, m.registrations, m.consent)
	}
	return m
}

var knownMethods = map[sip.RequestMethod]bool{
	sip.INVITE: true, sip.ACK: true, sip.CANCEL: true, sip.BYE: true, sip.REGISTER: true, sip.OPTIONS: true,
	sip.UPDATE: true, sip.INFO: true, sip.PRACK: true, sip.SUBSCRIBE: true, sip.NOTIFY: true, sip.REFER: true,
	sip.MESSAGE: true, sip.PUBLISH: true,
}

func methodLabel(m sip.RequestMethod) string {
	if knownMethods[m] {
		return string(m)
	}
	return "OTHER"
}

func codeClass(code int) string {
	if code < 100 || code > 699 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}
