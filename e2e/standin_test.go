package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/blackbox-gw/blackbox/config"
	"github.com/blackbox-gw/blackbox/store/secrets"
)

// The stand-in lets the gateway harness be proven before `blackbox serve`
// exists: the test binary re-executes itself with standinEnv set and plays
// the binary's documented interface (serve --config FILE, CLI commands with
// --config and stdin). It validates what the harness hands it exactly as
// the real binary will: config.Load and the Fernet keyring.
const standinEnv = "BLACKBOX_E2E_STANDIN"

// standinReadyDelay keeps /readyz at 503 briefly, so the harness's wait
// for readiness is exercised rather than assumed.
const standinReadyDelay = 300 * time.Millisecond

func standinMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "standin: no command")
		return 2
	}
	if args[0] == "serve" {
		return standinServe(args[1:])
	}
	return standinCLI(args)
}

func standinServe(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", "", "config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin: config:", err)
		return 2
	}
	if _, src, err := secrets.Load(cfg.Secrets.KeyFile, false); err != nil || src != secrets.FromEnv {
		fmt.Fprintf(os.Stderr, "standin: fernet keys from %q: %v\n", src, err)
		return 2
	}
	// Bind every SIP listener, as the gateway will, so a port the harness
	// got wrong fails here.
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, l := range cfg.SIP.Listen {
		la, err := config.ParseListen(l)
		if err != nil {
			fmt.Fprintln(os.Stderr, "standin:", err)
			return 2
		}
		var c io.Closer
		if la.Network == "udp" {
			c, err = net.ListenPacket("udp", la.Addr)
		} else {
			c, err = net.Listen("tcp", la.Addr)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "standin: sip listen:", err)
			return 2
		}
		closers = append(closers, c)
	}
	dir := filepath.Dir(*path)
	starts := filepath.Join(dir, "standin-starts")
	f, err := os.OpenFile(starts, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err == nil {
		fmt.Fprintln(f, os.Getpid())
		f.Close()
	}

	ready := time.Now().Add(standinReadyDelay)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if time.Now().Before(ready) {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# HELP blackbox_build_info Build.\n# TYPE blackbox_build_info gauge\n"+
			"blackbox_build_info{version=\"standin\",goversion=\"go\"} 1\n"+
			"blackbox_calls_active{direction=\"outbound\"} 0\n"+
			"blackbox_calls_active{direction=\"inbound\"} 0\n"+
			"blackbox_rtp_packets_total{direction=\"in\"} 42\n")
	})
	srv := &http.Server{Addr: cfg.HTTP.Listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin: http listen:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Grace)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	fmt.Fprintf(os.Stderr, "standin: serving sip %v http %s rtp %s\n", cfg.SIP.Listen, cfg.HTTP.Listen, cfg.Media.RTPPorts)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "standin:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "standin: stopped")
	return 0
}

// standinCLI answers `tenant add NAME --config F` and `user add ... --config F`
// (password on stdin); anything else is bad input with a non-zero exit.
func standinCLI(args []string) int {
	if len(args) < 2 || args[len(args)-2] != "--config" {
		fmt.Fprintln(os.Stderr, "standin: want ... --config FILE")
		return 2
	}
	if _, err := config.Load(args[len(args)-1]); err != nil {
		fmt.Fprintln(os.Stderr, "standin: config:", err)
		return 2
	}
	words := args[:len(args)-2]
	switch {
	case len(words) == 3 && words[0] == "tenant" && words[1] == "add":
		fmt.Printf("tenant %s created\n", words[2])
		return 0
	case len(words) >= 2 && words[0] == "user" && words[1] == "add":
		pw, err := io.ReadAll(os.Stdin)
		if err != nil || len(strings.TrimSpace(string(pw))) == 0 {
			fmt.Fprintln(os.Stderr, "standin: SIP password expected on stdin")
			return 2
		}
		fmt.Printf("user created (%s), password of %d bytes\n", strings.Join(words[2:], " "), len(strings.TrimSpace(string(pw))))
		return 0
	}
	fmt.Fprintf(os.Stderr, "standin: unknown command %q\n", strings.Join(words, " "))
	return 2
}
