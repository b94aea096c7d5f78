// Package media anchors the RTP of a B2BUA call: each call gets a Session
// that owns one RTP/RTCP port pair per leg, rewrites SDP so both parties send
// their media to Blackbox, relays packets between the legs, plays prompts,
// reports RFC 4733 DTMF and silent legs, and lets a Tap observe the audio.
//
// # Relay
//
// Every socket has one reader goroutine that owns its buffer, so the hot path
// shares no lock with other calls and allocates nothing per packet. Packets
// are forwarded byte for byte from the other leg's socket (symmetric RTP), to
// the address latched from the first valid packet the leg sent, or, before
// that, to the address in the leg's SDP. Packets from any other source are
// dropped. RTCP (the odd port) is relayed the same way and counts as liveness.
//
// # Bridge and prompts
//
// SetBridge(false) stops forwarding between the legs in both directions (RTP
// and RTCP); the legs still latch, stay alive and reach the Tap. Play sends a
// prompt into one or both legs with its own SSRC, sequence and timestamp per
// leg. Play does not silence the relay: while the bridge is on, a leg hears
// the far party and the prompt interleaved as two RTP streams, so callers
// that want a clean prompt (the consent phase) turn the bridge off first.
//
// # SDP
//
// Offer, Answer and LocalOffer translate SDP between the legs. Only PCMU and
// PCMA pass, with telephone-event (the offerer's payload type kept) and CN; a
// call is never transcoded, so both legs end up on one G.711 law. Direction
// attributes and c=0.0.0.0 pass through so hold and resume work end to end.
package media
