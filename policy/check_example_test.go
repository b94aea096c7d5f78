package policy

import "testing"

func TestShippedPoliciesAreValid(t *testing.T) {
	for _, f := range []string{"../configs/policy.example.yaml", "../configs/policy.yaml"} {
		sum, errs := Check(f)
		for _, e := range errs {
			t.Errorf("%v", e)
		}
		if len(errs) == 0 {
			t.Log(sum)
		}
	}
}
