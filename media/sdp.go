package media

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/pion/sdp/v3"
)

// legNeg is the offer/answer state of one leg, guarded by Session.mu.
type legNeg struct {
	sessID, version uint64
	lastKey         []byte // last SDP sent to the leg, marshalled with version 0

	layout   []mslot // m= lines of the last exchange on this leg
	audioIdx int     // which of them is the anchored audio

	known    bool              // the leg has sent SDP, so its remote is known
	told     bool              // Blackbox has sent SDP to the leg, so it can send
	armed    bool              // known && told: the RTP timeout applies
	lastAddr [2]netip.AddrPort // RTP, RTCP from its last SDP that was not a hold
	their    mediaInfo         // from the leg's last SDP
	ourDir   direction         // in the last SDP sent to the leg
	ourHold  bool
	sentDTMF ptSet  // telephone-event PTs in the last SDP sent to the leg
	codec    format // negotiated G.711 codec, numbered as the leg declared it

	exempt  bool  // on hold: the leg is not expected to send
	armedAt int64 // ns since epoch; silence is counted from here at the earliest
}

// pendingOffer is the last offer sent to leg `to`, which Answer applies to.
// It stays after an answer so a later answer to the same offer (183 then
// 200 with different SDP, or a retransmitted 200) is handled too.
type pendingOffer struct {
	local     bool // Blackbox's own offer (LocalOffer): nothing to relay back
	from, to  Leg
	desc      *sdp.SessionDescription // the offerer's SDP (nil when local)
	fromAudio int                     // audio index in desc
	sentLines int                     // m= lines in the offer sent to `to`
	sentAudio int                     // audio index in it
	offered   []format
}

// Offer translates an offer received on leg `from` into the offer to send
// on from.Other(). Errors wrap ErrBadSDP or ErrNoCodec; on error nothing
// changes.
func (s *Session) Offer(from Leg, body []byte) ([]byte, error) {
	if err := s.begin("offer", from); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	d, idx, info, err := s.readOffer(from, body)
	if err != nil {
		return nil, err
	}
	y := &s.neg[from]
	to := from.Other()
	line := audioLine(d.MediaDescriptions[idx], info.formats, s.legs[to].port(), info.dir)
	lines, sentAudio := s.neg[to].offerLines(line)
	out := s.render(to, lines, info.hold())

	now := s.now()
	y.layout, y.audioIdx = layoutOf(d), idx
	s.setTheir(from, info, now)
	s.neg[to].layout, s.neg[to].audioIdx = slotsOf(lines), sentAudio
	s.setOurs(to, info.dir, info.hold(), info.formats, now)
	s.offer = &pendingOffer{
		from: from, to: to, desc: d, fromAudio: idx,
		sentLines: len(lines), sentAudio: sentAudio, offered: info.formats,
	}
	return out, nil
}

// Answer translates an answer received on leg `from` (to the offer last
// sent there) into the answer to send on from.Other(): exactly the m= lines
// of that leg's offer, declined ones with port 0, and the codec leg `from`
// chose. It returns nil, nil when the offer was Blackbox's own (LocalOffer).
func (s *Session) Answer(from Leg, body []byte) ([]byte, error) {
	if err := s.begin("answer", from); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	o := s.offer
	if o == nil || o.to != from {
		return nil, fmt.Errorf("answer from leg %v: %w", from, badSDP("no offer was sent to this leg"))
	}
	d, err := parseSDP(body)
	if err != nil {
		return nil, fmt.Errorf("answer from leg %v: %w", from, err)
	}
	info, keep, err := readAnswer(d, o)
	if err == nil {
		err = s.checkReach(info)
	}
	if err != nil {
		return nil, fmt.Errorf("answer from leg %v: %w", from, err)
	}
	other := from.Other()
	now := s.now()
	if o.local {
		if c := s.neg[other].codec; c.kind.audio() && c.kind != keep[0].kind {
			return nil, fmt.Errorf("answer from leg %v: %w: leg %v uses the other G.711 law", from, ErrNoCodec, other)
		}
		s.setTheir(from, info, now)
		s.neg[from].codec = keep[0]
		return nil, nil
	}

	lines := make([]*sdp.MediaDescription, len(o.desc.MediaDescriptions))
	for i, m := range o.desc.MediaDescriptions {
		if i == o.fromAudio {
			lines[i] = audioLine(d.MediaDescriptions[o.sentAudio], keep, s.legs[other].port(), info.dir)
		} else {
			lines[i] = slotOf(m).rejected()
		}
	}
	out := s.render(other, lines, info.hold())

	s.setTheir(from, info, now)
	s.neg[from].codec = keep[0]
	for _, f := range o.offered {
		if f.kind == keep[0].kind {
			s.neg[other].codec = f
			break
		}
	}
	s.setOurs(other, info.dir, info.hold(), keep, now)
	return out, nil
}

// readAnswer validates an answer against the offer it answers and returns
// the formats to pass on: the chosen G.711 codec first, then
// telephone-event and CN if both sides have them.
func readAnswer(d *sdp.SessionDescription, o *pendingOffer) (mediaInfo, []format, error) {
	if n := len(d.MediaDescriptions); n != o.sentLines {
		return mediaInfo{}, nil, badSDP("%d m= lines, the offer had %d", n, o.sentLines)
	}
	m := d.MediaDescriptions[o.sentAudio]
	if m.MediaName.Media != "audio" {
		return mediaInfo{}, nil, badSDP("m= line %d is %q, the offer had audio", o.sentAudio, m.MediaName.Media)
	}
	if m.MediaName.Port.Value == 0 {
		return mediaInfo{}, nil, fmt.Errorf("%w: the audio stream was declined", ErrNoCodec)
	}
	info, err := readMedia(d, m)
	if err != nil {
		return mediaInfo{}, nil, err
	}
	var offered [kindCN + 1]bool
	for _, f := range o.offered {
		offered[f.kind] = true
	}
	chosen, ok := info.first(func(k codecKind) bool { return k.audio() && offered[k] })
	if !ok {
		return mediaInfo{}, nil, fmt.Errorf("%w: the answer has no offered PCMU/PCMA", ErrNoCodec)
	}
	keep := []format{chosen}
	for _, k := range []codecKind{kindTelephoneEvent, kindCN} {
		if f, ok := info.first(func(c codecKind) bool { return c == k }); ok && offered[k] {
			keep = append(keep, f)
		}
	}
	return info, keep, nil
}

// LocalOffer is Blackbox's own offer for leg: for an INVITE sent without
// SDP (late offer) or a re-INVITE that arrived without one. When the other
// leg already has a codec it offers only that one, since Blackbox never
// transcodes; otherwise PCMU, PCMA and telephone-event. The leg's answer is
// then given to Answer, which returns nil, nil.
func (s *Session) LocalOffer(leg Leg) ([]byte, error) {
	if err := s.begin("local offer", leg); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	keep := []format{{pt: 0, kind: kindPCMU}, {pt: 8, kind: kindPCMA}, {pt: 101, kind: kindTelephoneEvent}}
	if o := &s.neg[leg.Other()]; o.codec.kind.audio() {
		keep = []format{o.codec}
		if te, ok := o.their.first(func(k codecKind) bool { return k == kindTelephoneEvent }); ok {
			keep = append(keep, te)
		}
	}
	line := audioLine(nil, keep, s.legs[leg].port(), dirSendRecv)
	lines, sentAudio := s.neg[leg].offerLines(line)
	out := s.render(leg, lines, false)

	s.neg[leg].layout, s.neg[leg].audioIdx = slotsOf(lines), sentAudio
	s.setOurs(leg, dirSendRecv, false, keep, s.now())
	s.offer = &pendingOffer{local: true, from: leg, to: leg, sentLines: len(lines), sentAudio: sentAudio, offered: keep}
	return out, nil
}

// readOffer parses an offer received on leg and picks its audio stream
// (the one used before, when still usable). Callers hold s.mu.
func (s *Session) readOffer(leg Leg, body []byte) (*sdp.SessionDescription, int, mediaInfo, error) {
	d, err := parseSDP(body)
	if err != nil {
		return nil, 0, mediaInfo{}, fmt.Errorf("offer from leg %v: %w", leg, err)
	}
	prefer := -1
	if y := &s.neg[leg]; y.layout != nil {
		prefer = y.audioIdx
	}
	idx, info, err := pickAudio(d, prefer)
	if err == nil {
		err = s.checkReach(info)
	}
	if err != nil {
		return nil, 0, mediaInfo{}, fmt.Errorf("offer from leg %v: %w", leg, err)
	}
	return d, idx, info, nil
}

func (s *Session) checkReach(info mediaInfo) error {
	for _, a := range []netip.Addr{info.addr, info.rtcpAddr} {
		if !s.e.canReach(a) {
			return badSDP("media address %s is not reachable from %s", a, s.e.opts.BindAddr)
		}
	}
	return nil
}

// begin checks leg and takes s.mu for an SDP operation; on success the
// caller must unlock.
func (s *Session) begin(what string, leg Leg) error {
	if !leg.valid() {
		return fmt.Errorf("%s on %v: invalid leg", what, leg)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// offerLines places the audio line into the leg's earlier m= layout, every
// other stream declined; a leg with no history gets just the audio line.
func (n *legNeg) offerLines(audio *sdp.MediaDescription) ([]*sdp.MediaDescription, int) {
	if len(n.layout) == 0 {
		return []*sdp.MediaDescription{audio}, 0
	}
	lines := make([]*sdp.MediaDescription, len(n.layout))
	for i, slot := range n.layout {
		if i == n.audioIdx {
			lines[i] = audio
		} else {
			lines[i] = slot.rejected()
		}
	}
	return lines, n.audioIdx
}

func (s *Session) now() int64 { return int64(time.Since(s.epoch)) }

// setTheir records the SDP leg x sent and publishes the new remote to the
// relay. A changed address (the party moved, or a new media server took
// over) clears the latch so the next packet from the new place latches; a
// hold with c=0.0.0.0 and the resume to the same address do not.
func (s *Session) setTheir(x Leg, info mediaInfo, now int64) {
	n := &s.neg[x]
	if !info.hold() {
		addr := [2]netip.AddrPort{sockRTP: info.rtp(), sockRTCP: info.rtcp()}
		for k := range addr {
			if n.lastAddr[k].IsValid() && n.lastAddr[k] != addr[k] {
				s.legs[x].ep[k].latched.Store(nil)
			}
		}
		n.lastAddr = addr
	}
	n.known, n.their = true, info
	s.publish(x, now)
}

// setOurs records what Blackbox last told leg x.
func (s *Session) setOurs(x Leg, dir direction, hold bool, sent []format, now int64) {
	n := &s.neg[x]
	n.told = true
	n.ourDir, n.ourHold = dir, hold
	n.sentDTMF = ptSet{}
	for _, f := range sent {
		if f.kind == kindTelephoneEvent {
			n.sentDTMF.add(f.pt)
		}
	}
	s.publish(x, now)
}

// publish hands the relay a fresh snapshot of leg x's remote and updates its
// hold exemption from the RTP timeout.
func (s *Session) publish(x Leg, now int64) {
	n := &s.neg[x]
	r := &remote{dtmf: n.sentDTMF}
	if n.known {
		r.hold = n.their.hold()
		if !r.hold {
			r.addr = n.lastAddr
		}
		for _, f := range n.their.formats {
			if f.kind == kindTelephoneEvent {
				r.dtmf.add(f.pt)
			}
		}
	}
	s.legs[x].remote.Store(r)

	// A leg cannot send before it has Blackbox's address, so the timeout
	// starts once SDP went both ways on the leg; a caller ringing a slow
	// callee is not timed out for silence it could not help.
	if armed := n.known && n.told; armed && !n.armed {
		n.armed, n.armedAt = true, now
	}
	// The leg sends nothing when its own SDP says recvonly/inactive, when
	// Blackbox told it sendonly/inactive, or when either side used the old
	// c=0.0.0.0 hold.
	exempt := n.known && (!n.their.dir.sends() || n.their.hold()) ||
		n.ourDir == dirSendOnly || n.ourDir == dirInactive || n.ourHold
	if n.exempt && !exempt {
		n.armedAt = now // silence during the hold does not count
	}
	n.exempt = exempt
}
