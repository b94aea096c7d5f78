package sip

import (
	"context"
	"fmt"
	"time"

	"github.com/pion/rtp"

	"github.com/blackbox-gw/blackbox/media"
	"github.com/blackbox-gw/blackbox/recorder"
	"github.com/blackbox-gw/blackbox/store"
)

// Channel roles of every recording: left is the rep, right the other party
// together with the announcements played toward the rep (or, inbound, to
// the caller before the rep joins).
var channelMap = [2]string{"rep", "remote"}

// recTap routes the media session's audio into the recording's streams
// without the relay knowing what a recording is.
type recTap struct {
	streams [4]*recorder.Stream // by media.Source; nil means not recorded
}

func (t *recTap) RTP(src media.Source, hdr *rtp.Header, payload []byte, at time.Time) {
	if int(src) < len(t.streams) {
		if s := t.streams[src]; s != nil {
			s.RTP(hdr, payload, at)
		}
	}
}

// repLeg is the leg the tenant's rep is on.
func (c *Call) repLeg() media.Leg {
	if c.rec.Direction == store.Outbound {
		return media.LegA
	}
	return media.LegB
}

func fromLeg(l media.Leg) media.Source {
	if l == media.LegA {
		return media.FromA
	}
	return media.FromB
}

func promptTo(l media.Leg) media.Source {
	if l == media.LegA {
		return media.PromptToA
	}
	return media.PromptToB
}

// startRecording forks both legs into a new recording. Recording is not
// optional: a call that cannot be recorded does not go on.
func (c *Call) startRecording(ctx context.Context) error {
	rec, err := c.srv.opts.Recorder.Start(ctx, recorder.Meta{
		TenantID:  c.scope.Principal().TenantID(),
		CallID:    c.rec.ID,
		StartedAt: time.Now(),
		Channels:  channelMap,
	})
	if err != nil {
		return fmt.Errorf("start recording: %w", err)
	}
	rep, other := c.repLeg(), c.repLeg().Other()
	tap := &recTap{}
	tap.streams[fromLeg(rep)] = rec.Stream(recorder.Left)
	tap.streams[fromLeg(other)] = rec.Stream(recorder.Right)
	// What the rep hears of announcements, or (inbound, before the rep is
	// on the call) what the caller hears, goes with the other party.
	prompts := rec.Stream(recorder.Right)
	if c.rec.Direction == store.Outbound {
		tap.streams[promptTo(rep)] = prompts
	} else {
		tap.streams[promptTo(other)] = prompts
	}
	c.mu.Lock()
	c.recording = rec
	c.mu.Unlock()
	c.media.SetTap(tap)
	c.log.Info("recording", "recording", rec.ID())
	return nil
}

// stopRecording detaches the tap and finalises the recording (the upload
// then runs in the background). Safe to call more than once.
func (c *Call) stopRecording() {
	c.mu.Lock()
	rec := c.recording
	c.recording = nil
	ms := c.media
	c.mu.Unlock()
	if rec == nil {
		return
	}
	if ms != nil {
		ms.SetTap(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rec.Finish(ctx); err != nil {
		c.log.Error("finish recording", "recording", rec.ID(), "error", err)
	}
}
