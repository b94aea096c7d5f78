package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// State is where a job is in its life (River's states).
type State string

// Job states. Discarded (attempts exhausted) and cancelled (a Permanent
// error) are the dead letters.
const (
	StateAvailable State = State(rivertype.JobStateAvailable)
	StateScheduled State = State(rivertype.JobStateScheduled)
	StatePending   State = State(rivertype.JobStatePending)
	StateRunning   State = State(rivertype.JobStateRunning)
	StateRetryable State = State(rivertype.JobStateRetryable)
	StateCompleted State = State(rivertype.JobStateCompleted)
	StateDiscarded State = State(rivertype.JobStateDiscarded)
	StateCancelled State = State(rivertype.JobStateCancelled)
)

// Dead reports whether the state is a dead letter.
func (s State) Dead() bool { return s == StateDiscarded || s == StateCancelled }

var deadStates = []rivertype.JobState{rivertype.JobStateDiscarded, rivertype.JobStateCancelled}

// Info describes one job.
type Info struct {
	ID          int64
	Kind        string
	Queue       string
	State       State
	TenantID    string
	Key         string
	Args        json.RawMessage
	Attempt     int
	MaxAttempts int
	AttemptedBy []string // River client ids, newest last: node name and a suffix
	CreatedAt   time.Time
	ScheduledAt time.Time // when it runs next, for waiting jobs
	AttemptedAt time.Time // zero if never attempted
	FinalizedAt time.Time // zero unless completed or dead
	LastError   string
	Errors      int
}

func infoOf(row *rivertype.JobRow) (Info, error) {
	var env struct {
		TenantID string          `json:"tenant_id"`
		Key      string          `json:"key"`
		Args     json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(row.EncodedArgs, &env); err != nil {
		return Info{}, fmt.Errorf("job %d args: %w", row.ID, err)
	}
	in := Info{
		ID: row.ID, Kind: row.Kind, Queue: row.Queue, State: State(row.State), TenantID: env.TenantID, Key: env.Key,
		Args: env.Args, Attempt: row.Attempt, MaxAttempts: row.MaxAttempts, AttemptedBy: row.AttemptedBy,
		CreatedAt: row.CreatedAt.UTC(), ScheduledAt: row.ScheduledAt.UTC(), Errors: len(row.Errors),
	}
	if row.AttemptedAt != nil {
		in.AttemptedAt = row.AttemptedAt.UTC()
	}
	if row.FinalizedAt != nil {
		in.FinalizedAt = row.FinalizedAt.UTC()
	}
	if n := len(row.Errors); n > 0 {
		in.LastError = row.Errors[n-1].Error
	}
	return in, nil
}

// Get returns one job.
func (c *Client) Get(ctx context.Context, id int64) (Info, error) {
	row, err := c.rc.JobGet(ctx, id)
	return rowInfo("job", id, row, err)
}

// rowInfo turns what River answered about job id into an Info, or an error
// that says what was asked and is ErrNotFound for a missing job.
func rowInfo(what string, id int64, row *rivertype.JobRow, err error) (Info, error) {
	if errors.Is(err, river.ErrNotFound) {
		err = ErrNotFound
	}
	if err != nil {
		return Info{}, fmt.Errorf("%s %d: %w", what, id, err)
	}
	return infoOf(row)
}

// ListFilter narrows List.
type ListFilter struct {
	Dead   bool    // only dead letters (overrides States)
	States []State // nil for all
	Kind   string  // "" for all
	Limit  int     // default 100, max 1000
}

// List returns jobs of every tenant, newest first. It is for operators (the
// CLI runs it on the host, which holds the database anyway).
func (c *Client) List(ctx context.Context, f ListFilter) ([]Info, error) {
	switch {
	case f.Limit <= 0:
		f.Limit = 100
	case f.Limit > 1000:
		f.Limit = 1000
	}
	p := river.NewJobListParams().OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(f.Limit)
	switch {
	case f.Dead:
		p = p.States(deadStates...)
	case len(f.States) > 0:
		states := make([]rivertype.JobState, len(f.States))
		for i, s := range f.States {
			states[i] = rivertype.JobState(s)
		}
		p = p.States(states...)
	}
	if f.Kind != "" {
		p = p.Kinds(f.Kind)
	}
	res, err := c.rc.JobList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out := make([]Info, 0, len(res.Jobs))
	for _, row := range res.Jobs {
		in, err := infoOf(row)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, in)
	}
	return out, nil
}

// DeadCount counts the dead letters of every kind and tenant.
func (c *Client) DeadCount(ctx context.Context) (int, error) {
	total := 0
	for _, s := range deadStates {
		n, err := c.exec.JobCountByState(ctx, &riverdriver.JobCountByStateParams{State: s})
		if err != nil {
			return 0, fmt.Errorf("count dead jobs: %w", err)
		}
		total += n
	}
	return total, nil
}
