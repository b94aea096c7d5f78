package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/config"
)

// The consent and recorder tests of issue 3, against the real `blackbox
// serve`: the file: object store keeps each recording as one *.wav under
// objects.url; `recordings list --json` shows the hex SHA-256 and whether a
// recovered spool was truncated; the prompt is recorded at the start of the
// callee's (right) channel.

// toneCall is one recorded call: the rep's Go peer sends 440 Hz from the
// answer, the carrier's Go peer 1 kHz once the prompt is over.
type toneCall struct {
	answerAt, endAt time.Time // at the carrier: 200 OK sent, BYE received
	trunk, rep      *SIPp
}

// promptLen is the length of testdata/audio/prompt-beep.wav.
const promptLen = 800 * time.Millisecond

// startToneCall places the call; finish waits for its end.
func startToneCall(t *testing.T, ctx context.Context, fx *callFixture, hold time.Duration) *toneCall {
	t.Helper()
	repPeer, carrierPeer := newRTPPeer(t), fx.carrierPeer(t)
	c := &toneCall{}
	c.trunk = startSIPp(t, ctx, "uas-answer", fx.carrier(SIPpOptions{Keys: rtpKeys(carrierPeer)}))
	c.rep = startSIPp(t, ctx, "uac-call", fx.rep(SIPpOptions{Pause: hold, Keys: rtpKeys(repPeer)}))
	toTrunk := sdpOf(t, ctx, c.trunk, receivedInvite)
	toRep := sdpOf(t, ctx, c.rep, answered)
	talk := hold - 300*time.Millisecond
	repPeer.StartSending(t, toRep, toneStream(pcmu, 0x440, sine(sampleRate, 440, 8000, int(talk.Seconds()*sampleRate))))
	wait := promptLen + 400*time.Millisecond
	callee := toneStream(pcmu, 0x1000, sine(sampleRate, 1000, 8000, int((talk-wait).Seconds()*sampleRate)))
	callee.Delay = wait
	carrierPeer.StartSending(t, toTrunk, callee)
	return c
}

func (c *toneCall) finish(t *testing.T) {
	t.Helper()
	c.rep.RequireSuccess(t)
	c.trunk.RequireSuccess(t)
	msgs := c.trunk.Messages(t)
	ok, _ := firstMessage(msgs, func(m sipMessage) bool { return m.Sent && m.IsResponse(200, "INVITE") })
	bye, _ := firstMessage(msgs, func(m sipMessage) bool { return !m.Sent && m.IsRequest("BYE") })
	c.answerAt, c.endAt = ok.At, bye.At
}

// recordedToneCall runs a tone call of hold on a fresh gateway and returns
// the one recording it stored.
func recordedToneCall(t *testing.T, hold time.Duration) (*callFixture, *toneCall, string) {
	t.Helper()
	fx := newCallFixture(t, GatewayOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startToneCall(t, ctx, fx, hold)
	c.finish(t)
	return fx, c, oneRecording(t, fx.gw)
}

// recordingFiles lists the WAVs in the gateway's file: object store.
func recordingFiles(t *testing.T, gw *Gateway) []string {
	t.Helper()
	root := strings.TrimPrefix(gw.Config.Objects.URL, "file:")
	var out []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".wav") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// oneRecording waits for exactly one stored recording and returns its path.
func oneRecording(t *testing.T, gw *Gateway) string {
	t.Helper()
	var files []string
	if !eventually(15*time.Second, func() bool { files = recordingFiles(t, gw); return len(files) > 0 }) {
		t.Fatal("no recording stored")
	}
	time.Sleep(time.Second) // a second object would show up by now
	if files = recordingFiles(t, gw); len(files) != 1 {
		t.Fatalf("%d recordings stored, want exactly 1: %v", len(files), files)
	}
	return files[0]
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// channelHolds asserts that between from and to the channel is dominated by freq.
func channelHolds(t *testing.T, name string, samples []int16, freq float64, from, to time.Duration, min float64) {
	t.Helper()
	lo, hi := int(from.Seconds()*sampleRate), int(to.Seconds()*sampleRate)
	if lo < 0 || hi > len(samples) || lo >= hi {
		t.Errorf("%s: window %v-%v outside %v of audio", name, from, to, time.Duration(len(samples))*time.Second/sampleRate)
		return
	}
	for _, w := range toneProfile(samples[lo:hi], sampleRate, freq, 200*time.Millisecond) {
		if w.Fraction < min {
			t.Errorf("%s at %v: %.0f Hz fraction %.2f (RMS %.0f), want > %.2f", name, from+w.Start, freq, w.Fraction, w.RMS, min)
			return
		}
	}
}

// TestGatewayRecordingTones: the stored WAV has the rep's tone on the left,
// the prompt then the callee's tone on the right, the call's duration
// within 100 ms, and the SHA-256 the gateway stored.
func TestGatewayRecordingTones(t *testing.T) {
	fx, c, path := recordedToneCall(t, 5*time.Second)
	w, err := readWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	if w.Rate != sampleRate || len(w.Channels) != 2 {
		t.Fatalf("recording is %d Hz with %d channels, want 8000 Hz stereo", w.Rate, len(w.Channels))
	}
	want := c.endAt.Sub(c.answerAt)
	if d := w.Duration(); math.Abs(float64(d-want)) > float64(100*time.Millisecond) {
		t.Errorf("recording lasts %v, the call %v (answer to BYE at the carrier)", d, want)
	}
	end := w.Duration()
	channelHolds(t, "left (rep)", w.Channels[0], 440, 400*time.Millisecond, end-700*time.Millisecond, 0.8)
	channelHolds(t, "right (prompt)", w.Channels[1], 2000, 100*time.Millisecond, promptLen-100*time.Millisecond, 0.5)
	channelHolds(t, "right (callee)", w.Channels[1], 1000, promptLen+800*time.Millisecond, end-700*time.Millisecond, 0.8)

	sum := fileSHA256(t, path)
	if out := fx.gw.CLI(t, "", "recordings", "list", "--tenant", fxTenant, "--json"); !strings.Contains(out, sum) {
		t.Errorf("recordings list does not carry the object's SHA-256 %s:\n%s", sum, out)
	}
	fx.gw.CLI(t, "", "verify", "--tenant", fxTenant, "--all")
}

// TestGatewayVerifyTamper: one changed byte in a stored object makes
// `blackbox verify` exit non-zero and name it.
func TestGatewayVerifyTamper(t *testing.T) {
	fx, _, path := recordedToneCall(t, 3*time.Second)
	fx.gw.CLI(t, "", "verify", "--tenant", fxTenant, "--all")

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := fx.gw.RunCLI("", "verify", "--tenant", fxTenant, "--all")
	if err != nil {
		t.Fatal(err)
	}
	out := strings.ToLower(res.Stdout + res.Stderr)
	if res.ExitCode == 0 {
		t.Fatalf("verify passed a tampered object:\n%s", out)
	}
	if name := strings.TrimSuffix(filepath.Base(path), ".wav"); !strings.Contains(out, name) && !strings.Contains(out, "mismatch") {
		t.Errorf("verify does not name the tampered recording %s:\n%s", name, out)
	}
}

// TestGatewayRecordingKill9: kill -9 mid-call; after restart exactly one
// recording, marked truncated, with a valid hash.
func TestGatewayRecordingKill9(t *testing.T) {
	fx := newCallFixture(t, GatewayOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startToneCall(t, ctx, fx, 10*time.Second)
	time.Sleep(3 * time.Second) // a couple of seconds of audio in the spool
	fx.gw.Kill(t)
	c.rep.Stop()
	c.trunk.Stop()
	fx.gw.Restart(t)

	path := oneRecording(t, fx.gw)
	w, err := readWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := w.Duration(); d < time.Second || d > 4*time.Second {
		t.Errorf("recovered recording lasts %v, want about the 3 s before the kill", d)
	}
	out := fx.gw.CLI(t, "", "recordings", "list", "--tenant", fxTenant, "--json")
	if !strings.Contains(out, "truncated") || !strings.Contains(out, fileSHA256(t, path)) {
		t.Errorf("recordings list should show one truncated recording with the object's hash:\n%s", out)
	}
	fx.gw.CLI(t, "", "verify", "--tenant", fxTenant, "--all")
}

// TestGatewayConsentDTMF: with announce_dtmf, the callee's 1 bridges, 2
// ends the call, and silence ends it after consent.dtmf_timeout; each
// outcome is counted.
func TestGatewayConsentDTMF(t *testing.T) {
	const dtmfTimeout = 2 * time.Second
	for _, tc := range []struct {
		name, result string
		trunk, rep   string // the rep's scenario fails on an unexpected BYE, or without one
		digit        string
	}{
		{"1 bridges", "accepted", "uas-answer-dtmf", "uac-call", "dtmf_2833_1.pcap"},
		{"2 ends the call", "declined", "uas-answer-dtmf", "uac-call-expect-bye", "dtmf_2833_2.pcap"},
		{"timeout ends the call", "timeout", "uas-answer", "uac-call-expect-bye", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := writePolicy(t, "version: \"1\"\ndefaults:\n  consent:\n    default: announce_dtmf\n    unknown: announce_dtmf\n")
			fx := newCallFixture(t, GatewayOptions{Configure: func(c *config.Config) {
				c.Policy.File = pol
				c.Consent.DTMFTimeout = dtmfTimeout
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			trunkOpts := SIPpOptions{Pause: promptLen + 700*time.Millisecond}
			if tc.digit != "" {
				trunkOpts.Keys = map[string]string{"dtmf": tc.digit}
			}
			trunk := startSIPp(t, ctx, tc.trunk, fx.carrier(trunkOpts))
			rep := runSIPp(t, ctx, tc.rep, fx.rep(SIPpOptions{Pause: 4 * time.Second, Timeout: 20 * time.Second}))
			rep.RequireSuccess(t)
			trunk.RequireSuccess(t)
			if !eventually(5*time.Second, func() bool {
				v, _ := fx.gw.Metrics(t).Get("blackbox_consent_events_total", "mode", "announce_dtmf", "result", tc.result)
				return v == 1
			}) {
				t.Errorf("blackbox_consent_events_total{mode=announce_dtmf,result=%s} never reached 1", tc.result)
			}
		})
	}
}

// writePolicy writes a policy file for a gateway under test.
func writePolicy(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
