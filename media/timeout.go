package media

import "time"

type dtmfEvent struct {
	leg   Leg
	digit rune
}

// control is the session's own goroutine: it watches for silent legs and
// runs the user callbacks, so neither ever runs on (or stalls) the relay.
func (s *Session) control() {
	defer close(s.ctlDone)
	var tick <-chan time.Time
	if s.timeout > 0 && s.opts.OnTimeout != nil {
		t := time.NewTicker(checkPeriod(s.timeout))
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.done:
			return
		case ev := <-s.events:
			if s.stopped() {
				return
			}
			s.callback(func() { s.opts.OnDTMF(ev.leg, ev.digit) })
		case <-tick:
			if leg, ok := s.silentLeg(); ok {
				tick = nil // once per session
				s.log.Info("rtp timeout", "leg", leg, "timeout", s.timeout)
				s.callback(func() { s.opts.OnTimeout(leg) })
			}
		}
	}
}

func (s *Session) stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Session) callback(f func()) {
	s.inCallback.Store(true)
	defer s.inCallback.Store(false)
	f()
}

// checkPeriod trades timeout precision against wakeups: a tenth of the
// timeout, between 5 ms and 1 s.
func checkPeriod(timeout time.Duration) time.Duration {
	return min(max(timeout/10, 5*time.Millisecond), time.Second)
}

// ArmTimeout starts the RTP timeout of a session created with
// DeferTimeout (typically when the call is answered); silence before it
// does not count.
func (s *Session) ArmTimeout() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.timeoutHeld {
		return
	}
	s.timeoutHeld = false
	now := s.now()
	for x := LegA; x <= LegB; x++ {
		s.neg[x].armedAt = max(s.neg[x].armedAt, now)
	}
}

// silentLeg finds a leg that has sent nothing for the timeout. A leg counts
// only once SDP went both ways on it (see publish), and not while it is on
// hold; silence is counted from the later of its last packet and the
// moment it became eligible.
func (s *Session) silentLeg() (Leg, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timeoutHeld {
		return 0, false
	}
	now := s.now()
	for x := LegA; x <= LegB; x++ {
		n := &s.neg[x]
		if !n.armed || n.exempt {
			continue
		}
		last := max(s.legs[x].lastRecv.Load(), n.armedAt)
		if now-last >= int64(s.timeout) {
			return x, true
		}
	}
	return 0, false
}
