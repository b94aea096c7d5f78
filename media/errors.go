package media

import "errors"

// Sentinel errors callers decide on (SIP maps them to response codes).
var (
	// ErrBadSDP means the SDP could not be used: unparsable, missing or
	// invalid c=/m= lines, absurd ports, or an answer with no offer.
	// SIP answers 400 or 488.
	ErrBadSDP = errors.New("bad sdp")
	// ErrNoCodec means no PCMU/PCMA stream could be agreed. SIP answers 488.
	ErrNoCodec = errors.New("no acceptable codec")
	// ErrNoPorts means the RTP port range is exhausted. SIP answers 503.
	ErrNoPorts = errors.New("no free rtp ports")
	// ErrClosed means the session or engine was closed.
	ErrClosed = errors.New("media closed")
	// ErrNotNegotiated means a prompt was asked for a leg whose codec is not
	// known yet (no completed offer/answer on that leg).
	ErrNotNegotiated = errors.New("leg has no negotiated codec")
	// ErrBadPrompt means a prompt file is not the strict WAV Blackbox plays.
	ErrBadPrompt = errors.New("bad prompt")
)
