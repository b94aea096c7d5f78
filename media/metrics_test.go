package media

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			out[key] = value(mf.GetType(), m)
		}
	}
	return out
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	if typ == dto.MetricType_COUNTER {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newTestEngine(t, 4, func(o *Options) { o.Registerer = reg })
	c := newCall(t, e, SessionOptions{}, "0", "0")
	for i := range 5 {
		c.a.send(sockRTP, local(c.s, LegA, sockRTP), rtpPacket(t, 0, uint16(i), 0, 1, false, make([]byte, 160)))
		c.b.recv(sockRTP)
	}
	c.a.send(sockRTP, local(c.s, LegA, sockRTP), []byte{1, 2, 3})
	eventually(t, "malformed counted", func() bool { return c.s.Stats().Legs[LegA].Dropped[DropMalformed] == 1 })

	m := gather(t, reg)
	want := map[string]float64{
		"blackbox_rtp_packets_total{direction=in}":                    6,
		"blackbox_rtp_packets_total{direction=out}":                   5,
		"blackbox_rtp_bytes_total{direction=out}":                     5 * 172,
		"blackbox_rtp_packets_dropped_total{reason=malformed}":        1,
		"blackbox_rtp_packets_dropped_total{reason=bridge_off}":       0,
		"blackbox_rtp_packets_dropped_total{reason=unlatched_source}": 0,
		"blackbox_rtp_ports_in_use":                                   4,
		"blackbox_media_sessions":                                     1,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}

	// Closing the session keeps its counts (counters never go back).
	_ = c.s.Close()
	m = gather(t, reg)
	if m["blackbox_rtp_packets_total{direction=in}"] != 6 || m["blackbox_rtp_ports_in_use"] != 0 || m["blackbox_media_sessions"] != 0 {
		t.Errorf("after Close: %v", m)
	}

	// A second engine can register on the same registry once the first is closed.
	_ = e.Close()
	e2 := newTestEngine(t, 4, func(o *Options) { o.Registerer = reg })
	_ = e2
}
