package media

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// feeder keeps a phone sending RTP every 20 ms until stopped.
func feeder(t *testing.T, p *phone, to func() int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				pkt := rtpPacket(t, 0, uint16(i), uint32(160*i), 77, false, make([]byte, 160))
				_, _ = p.conn[sockRTP].WriteToUDPAddrPort(pkt, netip.AddrPortFrom(loopback, uint16(to())))
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

type timeoutRec struct {
	mu    sync.Mutex
	legs  []Leg
	at    []time.Time
	fired chan struct{}
}

func newTimeoutRec() *timeoutRec { return &timeoutRec{fired: make(chan struct{}, 8)} }

func (r *timeoutRec) on(leg Leg) {
	r.mu.Lock()
	r.legs = append(r.legs, leg)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
	r.fired <- struct{}{}
}

// wait returns the first leg reported and when, failing after 5 s.
func (r *timeoutRec) wait(t *testing.T, what string) (Leg, time.Time) {
	t.Helper()
	select {
	case <-r.fired:
	case <-time.After(5 * time.Second):
		t.Fatal(what)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.legs[0], r.at[0]
}

// expect waits for the first timeout and checks its leg and that it came no
// earlier than the timeout after since (less one check period of slack).
func (r *timeoutRec) expect(t *testing.T, want Leg, since time.Time, timeout time.Duration, what string) {
	t.Helper()
	leg, at := r.wait(t, what)
	if leg != want {
		t.Errorf("OnTimeout(%v), want %v", leg, want)
	}
	if d := at.Sub(since); d < timeout-checkPeriod(timeout) {
		t.Errorf("fired %v after the reference point, before the %v timeout", d, timeout)
	}
}

func (r *timeoutRec) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.legs)
}

func TestTimeoutFiresOnceForSilentLeg(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newTestEngine(t, 4, func(o *Options) { o.RTPTimeout = timeout })
	rec := newTimeoutRec()
	c := newCall(t, e, SessionOptions{OnTimeout: rec.on}, "0", "0")
	start := time.Now()
	stop := feeder(t, c.a, func() int { return c.s.LocalPort(LegA) })
	defer stop()

	rec.expect(t, LegB, start, timeout, "OnTimeout never fired for silent leg B")
	time.Sleep(2 * timeout)
	if n := rec.count(); n != 1 {
		t.Errorf("OnTimeout fired %d times, want once per session", n)
	}
}

func TestTimeoutNotArmedBeforeSDPBothWays(t *testing.T) {
	const timeout = 100 * time.Millisecond
	e := newTestEngine(t, 4, func(o *Options) { o.RTPTimeout = timeout })
	rec := newTimeoutRec()
	s := newTestSession(t, e, SessionOptions{OnTimeout: rec.on})
	time.Sleep(3 * timeout)
	if rec.count() != 0 {
		t.Fatal("timeout fired for legs whose SDP was never seen")
	}
	// A's offer is known, but A has no answer, so no address to send to yet
	// (the callee is ringing); B was offered but has not answered.
	a, b := newPhone(t), newPhone(t)
	if _, err := s.Offer(LegA, a.sdp("0")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * timeout)
	if rec.count() != 0 {
		t.Fatalf("timeout fired for leg %v before SDP went both ways", rec.legs[0])
	}
	// Once B answers, both legs are armed; B talks, A stays silent.
	if _, err := s.Answer(LegB, b.sdp("0")); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	stop := feeder(t, b, func() int { return s.LocalPort(LegB) })
	defer stop()
	rec.expect(t, LegA, answered, timeout, "no timeout for silent A after the answer (ringing must not count)")
}

func TestHoldExemptsFromTimeout(t *testing.T) {
	const timeout = 250 * time.Millisecond
	e := newTestEngine(t, 4, func(o *Options) { o.RTPTimeout = timeout })
	rec := newTimeoutRec()
	c := newCall(t, e, SessionOptions{OnTimeout: rec.on}, "0", "0")
	stop := feeder(t, c.a, func() int { return c.s.LocalPort(LegA) })
	defer stop()

	// A holds B (sendonly), B answers recvonly and goes quiet.
	if _, err := c.s.Offer(LegA, c.a.sdp("0", "a=sendonly")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s.Answer(LegB, c.b.sdp("0", "a=recvonly")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * timeout)
	if rec.count() != 0 {
		t.Fatalf("timeout fired for leg %v while B was on hold", rec.legs[0])
	}

	// Resume: B's silence now counts, from the resume on.
	if _, err := c.s.Offer(LegA, c.a.sdp("0", "a=sendrecv")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.s.Answer(LegB, c.b.sdp("0")); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	rec.expect(t, LegB, resumed, timeout, "no timeout after resume although B stayed silent (hold must not count)")
}

func TestRTCPCountsAsLiveness(t *testing.T) {
	const timeout = 250 * time.Millisecond
	e := newTestEngine(t, 4, func(o *Options) { o.RTPTimeout = timeout })
	rec := newTimeoutRec()
	c := newCall(t, e, SessionOptions{OnTimeout: rec.on}, "0", "0")
	stopA := feeder(t, c.a, func() int { return c.s.LocalPort(LegA) })
	defer stopA()
	// B sends only RTCP, every 100 ms.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			_, _ = c.b.conn[sockRTCP].WriteToUDPAddrPort(rtcpRR(5), local(c.s, LegB, sockRTCP))
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	time.Sleep(4 * timeout)
	close(done)
	wg.Wait()
	if rec.count() != 0 {
		t.Fatalf("timeout fired for %v although B sent RTCP", rec.legs[0])
	}
}

func TestCloseFromCallback(t *testing.T) {
	const timeout = 50 * time.Millisecond
	e := newTestEngine(t, 4, func(o *Options) { o.RTPTimeout = timeout })
	closed := make(chan error, 1)
	var s *Session
	var mu sync.Mutex
	s = newTestSession(t, e, SessionOptions{OnTimeout: func(Leg) {
		mu.Lock()
		defer mu.Unlock()
		closed <- s.Close()
	}})
	a, b := newPhone(t), newPhone(t)
	mu.Lock()
	if _, err := s.Offer(LegA, a.sdp("0")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Answer(LegB, b.sdp("0")); err != nil {
		t.Fatal(err)
	}
	mu.Unlock()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close from OnTimeout deadlocked or timeout never fired")
	}
	eventually(t, "ports released", func() bool { return e.PortsInUse() == 0 && e.Sessions() == 0 })
}

func TestDeferTimeoutUntilArmed(t *testing.T) {
	const timeout = 100 * time.Millisecond
	e := newTestEngine(t, 4, func(o *Options) { o.RTPTimeout = timeout })
	rec := newTimeoutRec()
	c := newCall(t, e, SessionOptions{OnTimeout: rec.on, DeferTimeout: true}, "0", "0")
	time.Sleep(4 * timeout)
	if rec.count() != 0 {
		t.Fatal("timeout fired before ArmTimeout")
	}
	armed := time.Now()
	c.s.ArmTimeout()
	rec.expect(t, LegA, armed, timeout, "no timeout after ArmTimeout")
}
