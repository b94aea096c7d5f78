package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blackbox-gw/blackbox/api"
	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/media"
	"github.com/blackbox-gw/blackbox/policy"
	"github.com/blackbox-gw/blackbox/recorder"
	"github.com/blackbox-gw/blackbox/sip"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
	"github.com/blackbox-gw/blackbox/store/secrets"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func runServe(ctx context.Context, env *cli, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "configs/dev.yaml", "configuration file")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, env.stderr)
	slog.SetDefault(log)

	kr, src, err := secrets.Load(cfg.Secrets.KeyFile, cfg.Dev)
	if err != nil {
		return fmt.Errorf("secrets: %w; serve refuses to start without a Fernet key", err)
	}
	if src == secrets.FromGenerated {
		log.Warn("GENERATED A NEW FERNET KEY for the embedded dev default; secrets in this store are sealed with it. "+
			"Production: set BLACKBOX_FERNET_KEYS or secrets.key_file (blackbox keygen) and keep the key safe.",
			"key_file", cfg.Secrets.KeyFile)
	}
	db, err := store.Open(ctx, cfg.Store.DSN, store.Options{Keyring: kr})
	if err != nil {
		return err
	}
	defer db.Close()
	if cfg.Dev {
		if err := seedDemo(ctx, cfg, db, env.stdout); err != nil {
			return fmt.Errorf("seed demo tenant: %w", err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(buildInfo())

	external := netip.MustParseAddr(cfg.SIP.ExternalHost)
	engine, err := media.NewEngine(media.Options{
		BindAddr:     netip.MustParseAddr(cfg.Media.Bind),
		ExternalAddr: external,
		PortMin:      cfg.Media.PortMin,
		PortMax:      cfg.Media.PortMax,
		RTPTimeout:   cfg.Media.RTPTimeout,
		Logger:       log, // media, recorder and policy name themselves in their logs
		Registerer:   reg,
	})
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	defer engine.Close()

	objs, err := objects.Open(ctx, cfg.Objects.URL, objects.Options{SSE: cfg.Objects.SSE, SSEKMSKeyID: cfg.Objects.SSEKMSKeyID})
	if err != nil {
		return fmt.Errorf("objects: %w", err)
	}
	jc, err := newJobs(cfg, db, reg, log)
	if err != nil {
		return err
	}
	rec, err := recorder.New(recorder.Options{
		SpoolDir:       cfg.Recorder.SpoolDir,
		SyncInterval:   cfg.Recorder.SyncInterval,
		Objects:        objs,
		DB:             db,
		Jobs:           jc,
		UploadAttempts: cfg.Recorder.UploadAttempts,
		Logger:         log,
		Registerer:     reg,
		Node:           cfg.Node,
	})
	if err != nil {
		return fmt.Errorf("recorder: %w", err)
	}
	pol, err := policy.NewEngine(policy.Options{
		File:       cfg.Policy.File,
		Counters:   db,
		Logger:     log,
		Registerer: reg,
		Node:       cfg.Node,
	})
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	retention, err := api.NewRetention(api.RetentionOptions{DB: db, Objects: objs, RetentionDays: pol.RetentionDays,
		Jobs: jc, Logger: log.With("component", "retention"), Registerer: reg})
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	// Uploads and retention sweeps run as durable jobs. The queue stops after the recorder (defers
	// run last-first), so uploads queued by calls ending during the drain
	// still start; a running one gets jobs' stop grace and otherwise goes
	// back to the queue for the next start.
	jobsCtx, stopJobs := context.WithCancel(context.Background())
	jobsDone := make(chan error, 1)
	go func() { jobsDone <- jc.Run(jobsCtx) }()
	defer func() {
		stopJobs()
		if err := <-jobsDone; err != nil {
			log.Error("job queue", "error", err)
		}
	}()
	// The recorder outlives the SIP drain so calls ending during it are
	// finalised; whatever is still pending is recovered at the next start.
	recCtx, stopRec := context.WithCancel(context.Background())
	defer stopRec()
	recDone := make(chan error, 1)
	go func() { recDone <- rec.Run(recCtx) }()
	defer func() { stopRec(); <-recDone }()

	pc := cfg.Consent.Prompts[cfg.Consent.Prompt]
	prompt, err := media.LoadPrompt(pc.File, cfg.Consent.Prompt, pc.Version)
	if err != nil {
		return fmt.Errorf("consent prompt: %w", err)
	}

	polCtx, stopPol := context.WithCancel(context.Background())
	defer stopPol()
	go func() { _ = pol.Run(polCtx) }()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := pol.Reload(); err != nil {
				log.Error("SIGHUP: policy not reloaded; the previous policy keeps serving", "error", err)
			} else {
				log.Info("SIGHUP: policy reloaded", "hash", pol.PolicyHash())
			}
		}
	}()

	nonceKey, err := kr.Derive("sip-digest-nonce")
	if err != nil {
		return err
	}
	var listeners []sip.Listener
	for _, l := range cfg.SIP.Listen {
		la, _ := config.ParseListen(l) // validated by config.Load
		listeners = append(listeners, sip.Listener{Network: la.Network, Addr: la.Addr})
	}
	srv, err := sip.NewServer(sip.Options{
		Listen:           listeners,
		ExternalHost:     external,
		Realm:            cfg.SIP.Realm,
		DigestAlgorithms: cfg.SIP.DigestAlgorithms,
		UserAgent:        cfg.SIP.UserAgent,
		NonceKey:         nonceKey,
		NonceTTL:         cfg.SIP.NonceTTL,
		Register: sip.RegisterOptions{
			MinExpires: cfg.SIP.Register.MinExpires, MaxExpires: cfg.SIP.Register.MaxExpires,
			DefaultExpires: cfg.SIP.Register.DefaultExpires, MaxContacts: cfg.SIP.Register.MaxContacts,
			SweepInterval: cfg.SIP.Register.SweepInterval,
		},
		RingTimeout:  cfg.SIP.RingTimeout,
		TrunkTimeout: cfg.SIP.TrunkTimeout,
		MaxCalls:     cfg.SIP.MaxCalls,
		Node:         cfg.Node,
		DB:           db,
		Media:        engine,
		Recorder:     rec,
		Consent: sip.ConsentOptions{
			Prompt:      prompt,
			DTMFTimeout: cfg.Consent.DTMFTimeout,
		},
		Policy:     pol,
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return err
	}

	// SIP keeps serving while calls drain after a signal, so its context is
	// not the signal context.
	sipCtx, stopSIP := context.WithCancel(context.Background())
	defer stopSIP()
	sipErr := make(chan error, 1)
	go func() { sipErr <- srv.Serve(sipCtx) }()
	select {
	case <-srv.Ready():
	case err := <-sipErr:
		return fmt.Errorf("sip: %w", err)
	}

	linkKey, err := kr.Derive("playback-links")
	if err != nil {
		return err
	}
	apiSrv, err := api.New(api.Options{DB: db, Objects: objs, LinkKey: linkKey, LinkTTL: cfg.API.LinkTTL,
		MaxLinkTTL: cfg.API.MaxLinkTTL, SIPRealm: cfg.SIP.Realm, RetentionDays: pol.RetentionDays,
		Logger: log.With("component", "api"), Registerer: reg})
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	retCtx, stopRet := context.WithCancel(context.Background())
	retDone := make(chan struct{})
	go func() { defer close(retDone); _ = retention.Run(retCtx) }()
	defer func() { stopRet(); <-retDone }()

	httpSrv, httpErr, err := serveHTTP(cfg, reg, db, srv, apiSrv, log)
	if err != nil {
		return err
	}
	log.Info("blackbox serving", "version", version, "node", cfg.Node, "http", cfg.HTTP.Listen, "store", db.Backend())
	if cfg.Dev {
		printDemo(cfg, env.stdout)
	}

	select {
	case <-ctx.Done():
	case err := <-sipErr:
		log.Error("sip stopped", "error", err)
	case err := <-httpErr:
		log.Error("http stopped", "error", err)
	}
	log.Info("shutting down: draining calls", "active", srv.ActiveCalls(), "grace", cfg.Shutdown.Grace)
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Grace)
	srv.Drain(drainCtx)
	cancel()
	stopSIP()
	shutCtx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	_ = httpSrv.Shutdown(shutCtx)
	_ = srv.Close()
	log.Info("stopped")
	return nil
}

// serveHTTP starts the operations listener: liveness, readiness, metrics.
func serveHTTP(cfg *config.Config, reg *prometheus.Registry, db *store.DB, srv *sip.Server, apiSrv http.Handler, log *slog.Logger) (*http.Server, <-chan error, error) {
	mux := http.NewServeMux()
	mux.Handle("/v1/", apiSrv)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if srv.Draining() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("http listen %s: %w", cfg.HTTP.Listen, err)
	}
	// No WriteTimeout: recordings stream through /v1 for as long as they last.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() {
		var err error
		if cfg.HTTP.TLSCert != "" {
			err = hs.ServeTLS(ln, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		} else {
			err = hs.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return hs, errc, nil
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func buildInfo() prometheus.Collector {
	goVersion := runtime.Version()
	rev := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "blackbox_build_info",
		Help:        "Build of the running binary; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion, "revision": rev},
	})
	g.Set(1)
	return g
}
