package media

import "fmt"

// Leg names one side of a B2BUA call.
type Leg int

const (
	// LegA is the dialog that reached Blackbox.
	LegA Leg = iota
	// LegB is the dialog Blackbox created.
	LegB
)

// Other returns the opposite leg.
func (l Leg) Other() Leg { return 1 - l }

func (l Leg) valid() bool { return l == LegA || l == LegB }

func (l Leg) String() string {
	switch l {
	case LegA:
		return "A"
	case LegB:
		return "B"
	default:
		return fmt.Sprintf("Leg(%d)", int(l))
	}
}

// Source says where audio seen by a Tap comes from.
type Source int

const (
	// FromA is RTP received from leg A.
	FromA Source = iota
	// FromB is RTP received from leg B.
	FromB
	// PromptToA is prompt audio Blackbox sent to leg A.
	PromptToA
	// PromptToB is prompt audio Blackbox sent to leg B.
	PromptToB
)

func fromLeg(l Leg) Source  { return FromA + Source(l) }
func promptTo(l Leg) Source { return PromptToA + Source(l) }

func (s Source) String() string {
	switch s {
	case FromA:
		return "from_a"
	case FromB:
		return "from_b"
	case PromptToA:
		return "prompt_to_a"
	case PromptToB:
		return "prompt_to_b"
	default:
		return fmt.Sprintf("Source(%d)", int(s))
	}
}
