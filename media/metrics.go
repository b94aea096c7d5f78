package media

import "github.com/prometheus/client_golang/prometheus"

// collector exports the engine's counters on scrape. The relay counts in
// per-session atomics that no other call touches; a scrape sums the live
// sessions and the totals of the closed ones, so the hot path never writes
// to an atomic shared by all calls.
type collector struct {
	e        *Engine
	packets  *prometheus.Desc
	bytes    *prometheus.Desc
	dropped  *prometheus.Desc
	ports    *prometheus.Desc
	sessions *prometheus.Desc
}

func newCollector(e *Engine) *collector {
	return &collector{
		e: e,
		packets: prometheus.NewDesc("blackbox_rtp_packets_total",
			"RTP and RTCP datagrams received from (in) and sent to (out) call parties.", []string{"direction"}, nil),
		bytes: prometheus.NewDesc("blackbox_rtp_bytes_total",
			"RTP and RTCP bytes received from (in) and sent to (out) call parties.", []string{"direction"}, nil),
		dropped: prometheus.NewDesc("blackbox_rtp_packets_dropped_total",
			"Datagrams not relayed, by reason.", []string{"reason"}, nil),
		ports: prometheus.NewDesc("blackbox_rtp_ports_in_use",
			"Local RTP and RTCP ports held by calls.", nil, nil),
		sessions: prometheus.NewDesc("blackbox_media_sessions",
			"Live media sessions.", nil, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets
	ch <- c.bytes
	ch <- c.dropped
	ch <- c.ports
	ch <- c.sessions
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	t, live := c.e.totals()
	ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(t.pktsIn), "in")
	ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(t.pktsOut), "out")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(t.bytesIn), "in")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(t.bytesOut), "out")
	for r, n := range t.drops {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n), DropReason(r).String())
	}
	ch <- prometheus.MustNewConstMetric(c.ports, prometheus.GaugeValue, float64(c.e.PortsInUse()))
	ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(live))
}
