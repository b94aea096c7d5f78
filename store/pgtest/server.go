// Package pgtest starts a real, throwaway Postgres cluster for tests: initdb
// into a temp dir, the server on a free loopback port with its unix socket in
// that dir, two roles shaped like production (an owner that migrates, and
// blackbox_app, the gateway's role, without BYPASSRLS and owning nothing),
// and a fresh database per test.
//
// Share one cluster per test binary:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
// then call New(t) in each test. Without Run, New starts a cluster per test.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role names the cluster is bootstrapped with. AppRole is the name the
// migrations grant privileges to.
const (
	SuperRole = "postgres"
	OwnerRole = "blackbox_owner"
	AppRole   = "blackbox_app"
)

// Options configures Start.
type Options struct {
	// BinDir holds initdb and postgres; "" finds them (see BinDir).
	BinDir string
	// Logf receives progress lines (t.Logf); nil discards them.
	Logf func(format string, args ...any)
}

// Server is one running cluster. Stop it when done.
type Server struct {
	bin     string
	root    string // temp dir holding data, socket and log; removed by Stop
	port    int
	cred    *syscall.Credential
	logPath string
	pw      map[string]string // role → password

	cmd    *exec.Cmd
	exited chan struct{} // closed when the server process is gone
	exitMu sync.Mutex
	exit   error

	mu  sync.Mutex
	seq int

	stopOnce sync.Once
	stopErr  error
}

// Start initialises and starts a cluster. It fails with ErrNoBinaries when
// Postgres is not installed.
func Start(ctx context.Context, opts Options) (*Server, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin := opts.BinDir
	if bin == "" {
		var err error
		if bin, err = BinDir(); err != nil {
			return nil, err
		}
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	base := tempBase(cred)
	sweepStale(base)
	root, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: temp dir: %w", err)
	}
	s := &Server{bin: bin, root: root, cred: cred, logPath: filepath.Join(root, "postgres.log"),
		pw: map[string]string{SuperRole: secret(), OwnerRole: secret(), AppRole: secret()}}
	fail := func(err error) (*Server, error) {
		s.Stop()
		return nil, err
	}
	if err := s.initdb(ctx); err != nil {
		return fail(err)
	}
	// A free port can be taken between our probe and the server's bind:
	// try a few before giving up.
	for attempt := 0; ; attempt++ {
		err = s.start(ctx)
		if err == nil {
			break
		}
		if attempt == 2 || ctx.Err() != nil {
			return fail(err)
		}
		logf("pgtest: start on port %d failed, retrying: %v", s.port, err)
	}
	if err := s.bootstrap(ctx); err != nil {
		return fail(err)
	}
	logf("pgtest: postgres running on 127.0.0.1:%d (data %s)", s.port, root)
	return s, nil
}

func (s *Server) initdb(ctx context.Context) error {
	pwfile := filepath.Join(s.root, "superuser.pw")
	if err := os.WriteFile(pwfile, []byte(s.pw[SuperRole]+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := s.chown(s.root, pwfile); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "initdb"),
		"-D", filepath.Join(s.root, "data"), "-U", SuperRole, "--pwfile", pwfile,
		"--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync", "--no-instructions")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.Dir = s.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return os.Remove(pwfile)
}

func (s *Server) start(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.port = port
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: log: %w", err)
	}
	// The server runs as our child rather than daemonised by pg_ctl, so a
	// test binary that dies (timeout, kill) takes it along: Pdeathsig sends
	// SIGQUIT, Postgres's immediate shutdown.
	s.cmd = exec.Command(filepath.Join(s.bin, "postgres"),
		"-D", filepath.Join(s.root, "data"),
		"-p", strconv.Itoa(port),
		"-k", s.root,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=64MB",
		"-c", "log_min_messages=warning",
		"-c", "log_min_error_statement=panic",
	)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		err := cmd.Wait()
		logf.Close()
		s.exitMu.Lock()
		s.exit = err
		s.exitMu.Unlock()
		close(done)
	}(s.cmd, s.exited)
	return s.waitReady(ctx)
}

// waitReady polls until the superuser can connect, the server dies, or 30 s.
func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, s.dsn(SuperRole, "postgres"))
		cancel()
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-s.exited:
			s.exitMu.Lock()
			exit := s.exit
			s.exitMu.Unlock()
			return fmt.Errorf("pgtest: postgres exited (%v) before accepting connections:\n%s", exit, s.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres not ready after 30s: %w\n%s", err, s.logTail())
		}
	}
}

// bootstrap creates the production-shaped roles: neither may bypass row
// security, and only the owner will own tables (each test database).
func (s *Server) bootstrap(ctx context.Context) error {
	return s.superExec(ctx, "postgres",
		fmt.Sprintf(`CREATE ROLE %s LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD '%s'`, OwnerRole, s.pw[OwnerRole]),
		fmt.Sprintf(`CREATE ROLE %s LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD '%s'`, AppRole, s.pw[AppRole]),
	)
}

// superExec runs statements as the superuser in database db.
func (s *Server) superExec(ctx context.Context, db string, stmts ...string) error {
	conn, err := pgx.Connect(ctx, s.dsn(SuperRole, db))
	if err != nil {
		return fmt.Errorf("pgtest: connect as %s: %w", SuperRole, err)
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("pgtest: %s: %w", strings.SplitN(q, " PASSWORD", 2)[0], err)
		}
	}
	return nil
}

// SocketDir holds the server's unix socket.
func (s *Server) SocketDir() string { return s.root }

func (s *Server) dsn(role, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(role, s.pw[role]),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Stop shuts the server down (fast shutdown, then kill after 10 s) and
// removes its files. Safe to call more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exited
				s.stopErr = errors.New("pgtest: postgres ignored fast shutdown; killed")
			}
		}
		if err := os.RemoveAll(s.root); err != nil && s.stopErr == nil {
			s.stopErr = fmt.Errorf("pgtest: remove %s: %w", s.root, err)
		}
	})
	return s.stopErr
}

func (s *Server) logTail() string {
	data, _ := os.ReadFile(s.logPath)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func secret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
