package sip_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/blackbox-gw/blackbox/media"
	"github.com/blackbox-gw/blackbox/policy"
	"github.com/blackbox-gw/blackbox/recorder"
	"github.com/blackbox-gw/blackbox/recorder/wavcheck"
	bbsip "github.com/blackbox-gw/blackbox/sip"
	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/jobs"
	"github.com/blackbox-gw/blackbox/store/objects"
	"github.com/blackbox-gw/blackbox/store/secrets"
)

const testRealm = "blackbox-test"

// gateway is a running sip.Server on loopback with a real SQLite store and
// a real media engine.
type gateway struct {
	srv     *bbsip.Server
	db      *store.DB
	udp     netip.AddrPort
	tcp     netip.AddrPort
	cancel  context.CancelFunc
	reg     *prometheus.Registry
	media   *media.Engine
	objects objects.Store
}

type gatewayOptions struct {
	register    bbsip.RegisterOptions
	nonceTTL    time.Duration
	rtpPorts    [2]int
	consentMode store.ConsentMode // announce_dtmf writes a policy choosing it
	policy      string            // policy YAML ("" = built-in defaults)
	dtmfTimeout time.Duration
	promptLen   time.Duration // default 300 ms
}

// promptFreq is the tone of the test announcement, so recordings can be
// checked for it.
const promptFreq = 1600

// testPrompt is an announcement of promptFreq lasting d.
func testPrompt(d time.Duration) *media.Prompt {
	if d == 0 {
		d = 300 * time.Millisecond
	}
	samples := wavcheck.Tone(promptFreq, 8000, 0, int(d.Seconds()*8000), 0.3)
	return &media.Prompt{ID: "consent-test", Version: "v1", SHA256: strings.Repeat("ab", 32), Samples: samples, Duration: d}
}

func startGateway(t *testing.T, o gatewayOptions) *gateway {
	t.Helper()
	key, _ := secrets.Generate()
	kr, err := secrets.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "bb.db"), store.Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	if o.rtpPorts == [2]int{} {
		o.rtpPorts = [2]int{31000, 31099}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	eng, err := media.NewEngine(media.Options{BindAddr: netip.MustParseAddr("127.0.0.1"), ExternalAddr: netip.MustParseAddr("127.0.0.1"),
		PortMin: o.rtpPorts[0], PortMax: o.rtpPorts[1], RTPTimeout: 3 * time.Second, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	nonceKey, _ := kr.Derive("nonce")
	objs, err := objects.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "objects"), objects.Options{})
	if err != nil {
		t.Fatal(err)
	}
	jc, err := jobs.New(jobs.Options{DB: db, Node: "test", PollInterval: 50 * time.Millisecond, Logger: log, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := recorder.New(recorder.Options{SpoolDir: filepath.Join(t.TempDir(), "spool"), Objects: objs, DB: db, Jobs: jc,
		Logger: log, Registerer: reg, Node: "test", Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	recCtx, stopRec := context.WithCancel(context.Background())
	recDone := make(chan error, 2)
	go func() { recDone <- rec.Run(recCtx) }()
	go func() { recDone <- jc.Run(recCtx) }()
	policyFile := ""
	if o.consentMode == store.ConsentAnnounceDTMF || o.policy != "" {
		body := o.policy
		if body == "" {
			body = "version: \"1\"\ndefaults:\n  consent:\n    default: announce_dtmf\n    unknown: announce_dtmf\n"
		}
		policyFile = filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(policyFile, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pol, err := policy.NewEngine(policy.Options{File: policyFile, Counters: db, Logger: log, Registerer: reg, Node: "test"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bbsip.NewServer(bbsip.Options{
		Listen:       []bbsip.Listener{{Network: "udp", Addr: "127.0.0.1:0"}, {Network: "tcp", Addr: "127.0.0.1:0"}},
		ExternalHost: netip.MustParseAddr("127.0.0.1"),
		Realm:        testRealm,
		NonceKey:     nonceKey,
		NonceTTL:     o.nonceTTL,
		Register:     o.register,
		TrunkTimeout: 2 * time.Second,
		RingTimeout:  10 * time.Second,
		Node:         "test",
		DB:           db,
		Media:        eng,
		Recorder:     rec,
		Consent:      bbsip.ConsentOptions{Prompt: testPrompt(o.promptLen), DTMFTimeout: o.dtmfTimeout},
		Policy:       pol,
		Logger:       log,
		Registerer:   reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	g := &gateway{srv: srv, db: db, cancel: cancel, reg: reg, media: eng, objects: objs}
	g.udp, _ = srv.Addr("udp")
	g.tcp, _ = srv.Addr("tcp")
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Drain(dctx)
		dcancel()
		cancel()
		<-done
		srv.Close()
		stopRec()
		<-recDone
		<-recDone
		eng.Close()
		db.Close()
	})
	return g
}

// provision creates a tenant with one rep.
func (g *gateway) provision(t *testing.T, tenant, user, password string) store.User {
	t.Helper()
	ctx := context.Background()
	if _, err := g.db.CreateTenant(ctx, tenant, "US"); err != nil {
		t.Fatal(err)
	}
	p, _ := g.db.AdminScope(ctx, tenant)
	u, err := g.db.In(p).CreateUser(ctx, store.NewUser{Username: user, Role: store.RoleRep, Realm: testRealm, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// phone is a sipgo user agent acting as a softphone.
type phone struct {
	ua  *sipgo.UserAgent
	cli *sipgo.Client
	srv *sipgo.Server
}

func newPhone(t *testing.T) *phone {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-phone"))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ua.Close() })
	return &phone{ua: ua, cli: cli, srv: srv}
}

// acceptByes answers every BYE the phone gets with 200 and reports each.
func (p *phone) acceptByes() <-chan struct{} {
	byes := make(chan struct{}, 4)
	p.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		select {
		case byes <- struct{}{}:
		default:
		}
	})
	return byes
}

// register sends a REGISTER for user to the gateway and, when challenged,
// answers with the password; it returns the final response.
func (p *phone) register(t *testing.T, g *gateway, user, password string, contacts []string, expires int, extra ...sip.Header) *sip.Response {
	t.Helper()
	req := registerRequest(g, user, contacts, expires, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 401 || password == "" {
		return res
	}
	res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func registerRequest(g *gateway, user string, contacts []string, expires int, extra ...sip.Header) *sip.Request {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: g.udp.Addr().String(), Port: int(g.udp.Port())})
	aor := sip.Uri{Scheme: "sip", User: user, Host: g.udp.Addr().String()}
	req.AppendHeader(&sip.ToHeader{Address: aor})
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	callID := sip.CallIDHeader(sip.GenerateTagN(16))
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.REGISTER})
	for _, c := range contacts {
		req.AppendHeader(sip.NewHeader("Contact", c))
	}
	if expires >= 0 {
		req.AppendHeader(sip.NewHeader("Expires", itoa(expires)))
	}
	for _, h := range extra {
		req.AppendHeader(h)
	}
	req.SetTransport("UDP")
	return req
}

func itoa(n int) string { return strconv.Itoa(n) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
