package media

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestPortPool(t *testing.T) {
	p, err := newPortPool(10001, 10008) // odd start: pairs 10002, 10004, 10006
	if err != nil {
		t.Fatal(err)
	}
	if p.pairs() != 3 {
		t.Fatalf("%d pairs, want 3", p.pairs())
	}
	var got []int
	for range 3 {
		port, ok := p.get()
		if !ok {
			t.Fatal("pool empty too early")
		}
		got = append(got, port)
	}
	if got[0] != 10002 || got[1] != 10004 || got[2] != 10006 {
		t.Errorf("pairs %v", got)
	}
	if _, ok := p.get(); ok {
		t.Fatal("handed out a fourth pair")
	}
	if p.pairsInUse() != 3 {
		t.Errorf("in use %d", p.pairsInUse())
	}
	// Released pairs come back last-released-last.
	if !p.put(10004) || !p.put(10002) {
		t.Fatal("put refused a pair in use")
	}
	if p.put(10004) || p.put(10003) || p.put(9000) || p.put(10008) {
		t.Error("put accepted a double release or a port that is no pair")
	}
	if a, _ := p.get(); a != 10004 {
		t.Errorf("got %d, want the pair released first (10004)", a)
	}
	if b, _ := p.get(); b != 10002 {
		t.Errorf("got %d, want 10002", b)
	}
	if p.pairsInUse() != 3 {
		t.Errorf("in use %d after double put attempts, want 3", p.pairsInUse())
	}

	for _, r := range [][2]int{{0, 10}, {10, 9}, {10, 70000}, {11, 11}, {10, 10}} {
		if _, err := newPortPool(r[0], r[1]); err == nil {
			t.Errorf("range %v accepted", r)
		}
	}
}

func TestPortPoolNeverHandsOutTwice(t *testing.T) {
	p, _ := newPortPool(20000, 20099)
	held := map[int]bool{}
	for i := range 10000 {
		if i%3 == 2 && len(held) > 0 {
			for port := range held {
				delete(held, port)
				p.put(port)
				break
			}
			continue
		}
		port, ok := p.get()
		if !ok {
			if len(held) != p.pairs() {
				t.Fatalf("pool empty with %d of %d held", len(held), p.pairs())
			}
			continue
		}
		if held[port] {
			t.Fatalf("pair %d handed out twice", port)
		}
		held[port] = true
	}
	if p.pairsInUse() != len(held) {
		t.Fatalf("in use %d, held %d", p.pairsInUse(), len(held))
	}
}

func TestEngineExhaustionAndRelease(t *testing.T) {
	e := newTestEngine(t, 4, nil)
	s1 := newTestSession(t, e, SessionOptions{})
	s2 := newTestSession(t, e, SessionOptions{})
	if e.PortsInUse() != 8 || e.Sessions() != 2 {
		t.Fatalf("ports %d sessions %d, want 8 and 2", e.PortsInUse(), e.Sessions())
	}
	if _, err := e.NewSession(SessionOptions{}); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("third session: %v, want ErrNoPorts", err)
	}
	if e.PortsInUse() != 8 {
		t.Fatalf("failed NewSession leaked ports: %d in use", e.PortsInUse())
	}
	_ = s1.Close()
	if e.PortsInUse() != 4 || e.Sessions() != 1 {
		t.Fatalf("after Close: ports %d sessions %d", e.PortsInUse(), e.Sessions())
	}
	s3 := newTestSession(t, e, SessionOptions{})
	if s3.LocalPort(LegA) == s2.LocalPort(LegA) || s3.LocalPort(LegA) == s2.LocalPort(LegB) {
		t.Error("a pair in use was handed out again")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if e.PortsInUse() != 0 || e.Sessions() != 0 {
		t.Fatalf("after engine Close: ports %d sessions %d", e.PortsInUse(), e.Sessions())
	}
	if _, err := s2.Offer(LegA, readSDP(t, "basic.sdp")); !errors.Is(err, ErrClosed) {
		t.Errorf("session survived engine Close: %v", err)
	}
	if _, err := e.NewSession(SessionOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("NewSession after Close: %v", err)
	}
}

func TestBindFailureTriesNextPair(t *testing.T) {
	e := newTestEngine(t, 3, nil)
	// Someone else holds the RTCP port of the first pair.
	blocker, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: e.opts.PortMin + e.opts.PortMin%2 + 1})
	if err != nil {
		t.Skipf("cannot take the port for the test: %v", err)
	}
	defer blocker.Close()
	s := newTestSession(t, e, SessionOptions{})
	blocked := e.opts.PortMin + e.opts.PortMin%2
	if s.LocalPort(LegA) == blocked || s.LocalPort(LegB) == blocked {
		t.Fatal("session got the pair whose port is taken")
	}
	if e.PortsInUse() != 4 {
		t.Fatalf("ports in use %d, want 4", e.PortsInUse())
	}
	// Only the blocked pair is left: the next session fails, leaking nothing.
	if _, err := e.NewSession(SessionOptions{}); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("err = %v, want ErrNoPorts", err)
	}
	if e.PortsInUse() != 4 {
		t.Fatalf("failed NewSession leaked ports: %d in use", e.PortsInUse())
	}
}

func TestNewEngineValidates(t *testing.T) {
	good := Options{BindAddr: loopback, ExternalAddr: loopback, PortMin: 30000, PortMax: 30003}
	cases := map[string]func(*Options){
		"no bind":           func(o *Options) { o.BindAddr = netip.Addr{} },
		"unspecified ext":   func(o *Options) { o.ExternalAddr = netipMust("0.0.0.0") },
		"v6 ext on v4 bind": func(o *Options) { o.ExternalAddr = netipMust("2001:db8::1") },
		"v4 ext on v6 bind": func(o *Options) { o.BindAddr = netipMust("::1") },
		"low ports":         func(o *Options) { o.PortMin, o.PortMax = 80, 90 },
		"one pair":          func(o *Options) { o.PortMax = 30001 },
		"negative timeout":  func(o *Options) { o.RTPTimeout = -1 },
	}
	for name, mod := range cases {
		o := good
		mod(&o)
		if _, err := NewEngine(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	e, err := NewEngine(good)
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
}
