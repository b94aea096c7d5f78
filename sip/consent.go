package sip

import (
	"context"
	"errors"
	"time"

	"github.com/blackbox-gw/blackbox/media"
	"github.com/blackbox-gw/blackbox/policy"
	"github.com/blackbox-gw/blackbox/store"
)

// ConsentOptions configure the announcement played before a call is
// bridged; the policy decides per call whether it asks for a key press.
type ConsentOptions struct {
	Prompt      *media.Prompt
	DTMFTimeout time.Duration
}

// consentNone: no announcement (emergency calls only; the policy decides,
// never a rep).
const consentNone store.ConsentMode = ""

// consentMode maps the policy's decision onto the stored mode.
func consentMode(m policy.ConsentMode) store.ConsentMode {
	switch m {
	case policy.ModeNone:
		return consentNone
	case policy.ModeAnnounceDTMF:
		return store.ConsentAnnounceDTMF
	}
	// Anything else, or nothing, is the plain announcement: a call is never
	// left unannounced by accident.
	return store.ConsentAnnounce
}

// runConsent plays the announcement to playTo and, in announce_dtmf mode,
// waits for the party on leg `from` to press 1 (accept) or 2 (decline).
// Every call that reaches the prompt leaves a consent event; the result
// decides whether the call is bridged.
func (c *Call) runConsent(mode store.ConsentMode, from media.Leg, playTo ...media.Leg) store.ConsentResult {
	opts := c.srv.opts.Consent
	ev := store.ConsentEvent{
		CallID:        c.rec.ID,
		Party:         store.PartyCallee,
		PromptID:      opts.Prompt.ID,
		PromptVersion: store.PromptVersion(opts.Prompt.Version, opts.Prompt.SHA256),
		Mode:          mode,
		StartedAt:     time.Now(),
	}
	if c.rec.Direction == store.Inbound {
		ev.Party = store.PartyCaller
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	// Digits count from the answer (collectDigits): a party who presses 1
	// while the prompt plays need not press again.
	err := c.media.Play(ctx, opts.Prompt, playTo...)
	switch {
	case err != nil && (ctx.Err() != nil || errors.Is(err, media.ErrClosed)):
		// The call ended under the prompt (its media closes first).
		ev.Result = store.ConsentHangupDuringPrompt
	case err != nil:
		c.log.Error("consent prompt failed", "error", err)
		ev.Result = store.ConsentFailed
	case mode == store.ConsentAnnounce:
		ev.Result = store.ConsentPlayed
	default:
		ev.Result, ev.Digit = c.awaitDigit(ctx, from, opts.DTMFTimeout)
	}
	ev.EndedAt = time.Now()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if _, err := c.scope.RecordConsent(wctx, ev); err != nil {
		c.log.Error("record consent event", "error", err)
	}
	c.srv.metrics.consent.WithLabelValues(string(mode), string(ev.Result)).Inc()
	c.log.Info("consent", "mode", mode, "result", ev.Result, "digit", ev.Digit)
	return ev.Result
}

// awaitDigit waits for 1 (accept) or 2 (decline) from leg; other keys and
// other legs are ignored.
func (c *Call) awaitDigit(ctx context.Context, from media.Leg, timeout time.Duration) (store.ConsentResult, string) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case d := <-c.digits:
			switch {
			case d.leg != from:
			case d.d == '1':
				return store.ConsentAccepted, "1"
			case d.d == '2':
				return store.ConsentDeclined, "2"
			}
		case <-timer.C:
			return store.ConsentTimeout, ""
		case <-ctx.Done():
			return store.ConsentHangupDuringPrompt, ""
		}
	}
}

// consented reports whether a consent result lets the call be bridged.
func consented(r store.ConsentResult) bool {
	return r == store.ConsentPlayed || r == store.ConsentAccepted
}

// consentEnd is the end reason of a call refused at the prompt.
func consentEnd(r store.ConsentResult) string {
	return "consent_" + string(r)
}
