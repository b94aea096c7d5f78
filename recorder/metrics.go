package recorder

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a packet did not reach the recording (label values of
// blackbox_recording_packets_dropped_total).
const (
	dropLate      = "late"      // arrived after its place was written
	dropDuplicate = "duplicate" // same sequence number seen
	dropOverflow  = "overflow"  // too far ahead of the writer (writer stalled)
	dropCodec     = "codec"     // not PCMU/PCMA (telephone-event, CN, ...)
	dropInvalid   = "invalid"   // empty or oversized payload
)

type metrics struct {
	active       prometheus.Gauge
	bytes        prometheus.Counter
	uploadsOK    prometheus.Counter
	uploadsErr   prometheus.Counter
	uploadDur    prometheus.Histogram
	deadLettered prometheus.Counter
	spoolErrors  prometheus.Counter
	recovered    prometheus.Counter
	realigned    prometheus.Counter
	dropped      map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	uploads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "blackbox_recording_uploads_total",
		Help: "Recording upload attempts by result (ok, error).",
	}, []string{"result"})
	drops := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "blackbox_recording_packets_dropped_total",
		Help: "RTP packets not written into a recording, by reason; their time is filled with silence.",
	}, []string{"reason"})
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blackbox_recordings_active", Help: "Recordings currently being written.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blackbox_recording_bytes_total", Help: "PCM bytes written to recording spools.",
		}),
		uploadsOK:  uploads.WithLabelValues("ok"),
		uploadsErr: uploads.WithLabelValues("error"),
		uploadDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blackbox_recording_upload_duration_seconds",
			Help:    "Time to upload one recording to object storage, successful or not.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10),
		}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blackbox_recordings_dead_lettered_total",
			Help: "Recordings marked failed after exhausting upload attempts; their spool is kept.",
		}),
		spoolErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blackbox_recording_spool_errors_total", Help: "Failed writes or syncs of recording spool files.",
		}),
		recovered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blackbox_recordings_recovered_total", Help: "Spool files left by a previous run and queued for upload.",
		}),
		realigned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blackbox_recording_stream_realignments_total",
			Help: "Times an input stream was re-anchored to the wall clock (SSRC change, timestamp jump, clock drift).",
		}),
		dropped: map[string]prometheus.Counter{},
	}
	for _, r := range []string{dropLate, dropDuplicate, dropOverflow, dropCodec, dropInvalid} {
		m.dropped[r] = drops.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.active, m.bytes, uploads, m.uploadDur, m.deadLettered, m.spoolErrors, m.recovered, m.realigned, drops} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("recorder metrics: %w (one Manager per registry)", err)
			}
			return nil, fmt.Errorf("recorder metrics: %w", err)
		}
	}
	return m, nil
}
