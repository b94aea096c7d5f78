package media

import (
	"fmt"

	"github.com/pion/sdp/v3"
)

// AnswerLocal answers an offer received on leg with Blackbox's own answer,
// for when Blackbox is the far end for a while: an inbound caller hears the
// consent announcement before any rep's phone rings. The leg gets the
// offerer's first G.711 codec (plus telephone-event and CN when offered);
// the other leg, offered later with LocalOffer, gets that same codec since
// Blackbox never transcodes.
func (s *Session) AnswerLocal(leg Leg, body []byte) ([]byte, error) {
	if err := s.begin("local answer", leg); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	d, idx, info, err := s.readOffer(leg, body)
	if err != nil {
		return nil, err
	}
	y := &s.neg[leg]
	chosen, ok := info.first(codecKind.audio)
	if !ok {
		return nil, fmt.Errorf("offer from leg %v: %w", leg, ErrNoCodec)
	}
	keep := []format{chosen}
	for _, k := range []codecKind{kindTelephoneEvent, kindCN} {
		if f, ok := info.first(func(c codecKind) bool { return c == k }); ok {
			keep = append(keep, f)
		}
	}
	dir := answerDirection(info.dir)
	lines := make([]*sdp.MediaDescription, len(d.MediaDescriptions))
	for i, m := range d.MediaDescriptions {
		if i == idx {
			lines[i] = audioLine(m, keep, s.legs[leg].port(), dir)
		} else {
			lines[i] = slotOf(m).rejected()
		}
	}
	out := s.render(leg, lines, info.hold())

	now := s.now()
	y.layout, y.audioIdx = layoutOf(d), idx
	s.setTheir(leg, info, now)
	y.codec = chosen
	s.setOurs(leg, dir, info.hold(), keep, now)
	return out, nil
}

// answerDirection mirrors an offerer's direction (RFC 3264 section 6.1).
func answerDirection(offer direction) direction {
	switch offer {
	case dirSendOnly:
		return dirRecvOnly
	case dirRecvOnly:
		return dirSendOnly
	}
	return offer
}
