package media

import "testing"

func TestLegAndSource(t *testing.T) {
	if LegA.Other() != LegB || LegB.Other() != LegA {
		t.Error("Other is not the opposite leg")
	}
	if LegA.String() != "A" || LegB.String() != "B" || Leg(5).String() != "Leg(5)" || Leg(5).valid() || Leg(-1).valid() {
		t.Error("leg names or validity wrong")
	}
	if fromLeg(LegA) != FromA || fromLeg(LegB) != FromB || promptTo(LegA) != PromptToA || promptTo(LegB) != PromptToB {
		t.Error("source mapping wrong")
	}
	for s, name := range map[Source]string{FromA: "from_a", FromB: "from_b", PromptToA: "prompt_to_a", PromptToB: "prompt_to_b"} {
		if s.String() != name {
			t.Errorf("%d.String() = %q", s, s.String())
		}
	}
	if DropSendError.String() != "send_error" || DropReason(99).String() != "unknown" {
		t.Error("drop reason names wrong")
	}
}
