package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blackbox-gw/blackbox/store"
)

// metrics: route is the ServeMux pattern ("GET /v1/calls/{id}") or
// "unmatched", never the raw path, so the label set stays bounded.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	playbacks *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blackbox_http_requests_total",
			Help: "API requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "blackbox_http_request_duration_seconds",
			Help:    "Time to answer an API request (for playback: until the last byte), by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		playbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blackbox_playbacks_total",
			Help: "Listening sessions opened (one access-log entry each), by path: proxy or link.",
		}, []string{"path"}),
	}
	for _, p := range []store.AccessPath{store.AccessProxy, store.AccessLink} {
		m.playbacks.WithLabelValues(string(p))
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.playbacks} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("metrics already registered: one api.Server per registry")
			}
			return nil, err
		}
	}
	return m, nil
}

// statusWriter remembers the status code and counts body bytes.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	dur := s.met.duration.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		dur.Observe(time.Since(start).Seconds())
		s.met.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
	})
}
