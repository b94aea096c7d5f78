package e2e

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// TestBaresipSelfCheck proves the baresip harness against SIPp: it
// registers with digest at a SIPp registrar, calls a SIPp UAS whose media
// is a Go rtpPeer (so both directions of audio are measured), takes an
// auto-answered inbound call, and reports a refused registration.
func TestBaresipSelfCheck(t *testing.T) {
	requireTool(t, "sipp")
	requireTool(t, "baresip")

	t.Run("register and call out", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		registrar := startSIPp(t, ctx, "uas-registrar", SIPpOptions{Keys: map[string]string{"user": "alice", "pass": "s3cret"}})
		carrier := newRTPPeer(t)
		trunk := startSIPp(t, ctx, "uas-answer", SIPpOptions{Keys: rtpKeys(carrier)})

		phone := startBaresip(t, BaresipOptions{User: "alice", Password: "s3cret", Registrar: registrar.LocalAddr})
		if err := phone.WaitRegistered(ctx); err != nil {
			t.Fatal(err)
		}
		wantExit(t, registrar, sippAllOK)

		if err := phone.Dial(ctx, "sip:+15550100001@"+trunk.LocalAddr); err != nil {
			t.Fatal(err)
		}
		// Answer baresip's audio with a 1 kHz tone from the carrier's peer,
		// sent to the address baresip offered.
		invite, err := trunk.WaitForMessage(ctx, func(m sipMessage) bool { return !m.Sent && m.IsRequest("INVITE") })
		if err != nil {
			t.Fatal(err)
		}
		host, port, ok := invite.sdpMedia()
		if !ok {
			t.Fatalf("baresip's INVITE has no SDP media:\n%s", invite.Body)
		}
		phoneMedia := netip.AddrPortFrom(netip.MustParseAddr(host), uint16(port))
		if p := int(phoneMedia.Port()); p < phone.RTPMin || p > phone.RTPMax {
			t.Errorf("baresip offered port %d outside its rtp_ports %d-%d", p, phone.RTPMin, phone.RTPMax)
		}
		tone := sine(sampleRate, 1000, 8000, 2*sampleRate)
		sender := carrier.StartSending(t, phoneMedia, toneStream(pcmu, 0x1000, tone))
		<-sender.Done()
		if err := sender.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := phone.Hangup(ctx); err != nil {
			t.Fatal(err)
		}
		wantExit(t, trunk, sippAllOK)

		got := carrier.Received()
		if len(got) < 50 {
			t.Fatalf("carrier got %d packets from baresip in 2 s", len(got))
		}
		assertRTPSource(t, got, phoneMedia.Addr(), int(phoneMedia.Port()), int(phoneMedia.Port()))
		if frac := toneFraction(decodeRTP(got), sampleRate, 440); frac < 0.8 {
			t.Errorf("baresip sent %.2f of 440 Hz, want its tone-440.wav microphone", frac)
		}
		heard := phone.Heard(t)
		if frac := toneFraction(heard.Channels[0], heard.Rate, 1000); frac < 0.5 {
			t.Errorf("baresip heard %.2f of 1 kHz over %v", frac, heard.Duration())
		}
	})

	t.Run("answer inbound", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		registrar := startSIPp(t, ctx, "uas-registrar", SIPpOptions{Keys: map[string]string{"user": "bob", "pass": "pw"}})
		phone := startBaresip(t, BaresipOptions{User: "bob", Password: "pw", Registrar: registrar.LocalAddr, AutoAnswer: true})
		if err := phone.WaitRegistered(ctx); err != nil {
			t.Fatal(err)
		}
		trunk := runSIPp(t, ctx, "uac-call-audio", SIPpOptions{Remote: phone.SIPAddr, Service: "bob", Pause: time.Second,
			Keys: map[string]string{"audio": "tone-1000-pcmu.pcap"}})
		wantExit(t, trunk, sippAllOK)
		e, err := phone.WaitEvent(ctx, "CALL_CLOSED")
		if err != nil {
			t.Fatal(err)
		}
		if e.Direction != "incoming" {
			t.Errorf("call direction %q", e.Direction)
		}
		if _, err := phone.WaitEvent(ctx, "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
		heard := phone.Heard(t)
		if frac := toneFraction(heard.Channels[0], heard.Rate, 1000); frac < 0.5 {
			t.Errorf("baresip heard %.2f of 1 kHz", frac)
		}
	})

	t.Run("digest algorithms", func(t *testing.T) {
		t.Parallel()
		// baresip 1.0 (libre) registers against an MD5 challenge, with the
		// Request-URI as digest uri, but gives up ("Function not
		// implemented") as soon as any SHA-256 challenge is offered, even
		// after an MD5 one. Pinned here: a registrar that must serve this
		// phone has to be able to challenge with MD5 alone.
		for _, tc := range []struct {
			algs []string
			ok   bool
		}{{[]string{"MD5"}, true}, {[]string{"MD5", "SHA-256"}, false}, {[]string{"SHA-256", "MD5"}, false}} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			reg := startSIPResponder(t, responderOptions{Challenge: &digestCheck{Realm: "blackbox", Username: "erin", Password: "pw", Algorithms: tc.algs}})
			phone := startBaresip(t, BaresipOptions{User: "erin", Password: "pw", Registrar: reg.Addr()})
			err := phone.WaitRegistered(ctx)
			cancel()
			if (err == nil) != tc.ok {
				t.Errorf("challenges %v: registration error %v, want success %v", tc.algs, err, tc.ok)
			}
			if auths := reg.Auths(); tc.ok && (len(auths) != 1 || !auths[0].Valid || auths[0].URI != auths[0].RURI) {
				t.Errorf("challenges %v: credentials %+v", tc.algs, auths)
			}
		}
	})

	t.Run("refused registration", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		registrar := startSIPp(t, ctx, "uas-registrar", SIPpOptions{Keys: map[string]string{"user": "carol", "pass": "right"}})
		phone := startBaresip(t, BaresipOptions{User: "carol", Password: "wrong", Registrar: registrar.LocalAddr})
		if err := phone.WaitRegistered(ctx); err == nil {
			t.Fatal("registration with a wrong password succeeded")
		}
		wantExit(t, registrar, sippAllOK) // its log is complete once it exits
		if final, _ := finalResponse(registrar.Messages(t), "REGISTER"); final.Status() != 403 {
			t.Errorf("registrar's final answer %q", final.StartLine)
		}
	})
}
