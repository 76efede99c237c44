package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// step is one planned write: enter status, then hold it for hold.
type step struct {
	status string
	hold   time.Duration
}

// active is a run the generator is still driving.
type active struct {
	rec  *RunRecord
	plan []step // remaining steps, the first one next
	next time.Time
}

// Thresholds are the delay and stall thresholds the generator plans runs
// around (the shortest of the rules').
type Thresholds struct {
	Delay, Stall time.Duration
}

// generator drives MeshHook runs through every status and records what it
// wrote, with the database's timestamps.
type generator struct {
	pool      *pgxpool.Pool
	project   string
	workflows map[string]string // "slug/vN" → workflow_definitions.id
	slugs     []string
	th        Thresholds
	rng       *rand.Rand
	rate      float64 // new runs per second

	mu   sync.Mutex // guards runs and last
	runs []*RunRecord
	last time.Time // time of the last write
}

// newGenerator returns a generator writing runs of project's workflows.
func newGenerator(pool *pgxpool.Pool, project string, workflows map[string]string, th Thresholds, seed uint64, rate float64) *generator {
	g := &generator{pool: pool, project: project, workflows: workflows, th: th,
		rng: rand.New(rand.NewPCG(seed, 0x9e4)), rate: rate}
	for slug := range workflows {
		g.slugs = append(g.slugs, slug)
	}
	// Map order is random: sort so a seed replays the same runs.
	slices.Sort(g.slugs)
	return g
}

func (g *generator) dur(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(g.rng.Int64N(int64(hi-lo)+1))
}

func (g *generator) terminalStatus() string {
	return []string{stSucceeded, stFailed, stCanceled}[g.rng.IntN(3)]
}

// plan picks the life of a new run. Runs meant to alert delayed or stalled
// hold their condition well past every rule's threshold (and the checker's
// tolerance); borderline runs end right at the delay threshold.
func (g *generator) plan() []step {
	d, s := g.th.Delay, g.th.Stall
	ms := time.Millisecond
	switch x := g.rng.IntN(100); {
	case x < 35: // short run
		return []step{{stRunning, g.dur(100*ms, 1500*ms)}, {g.terminalStatus(), 0}}
	case x < 55: // a short manual intervention
		return []step{{stRunning, g.dur(100*ms, 800*ms)}, {stPaused, g.dur(200*ms, 1500*ms)},
			{stRunning, g.dur(100*ms, 800*ms)}, {g.terminalStatus(), 0}}
	case x < 67: // stalled: paused well past the stall threshold
		return []step{{stRunning, g.dur(100*ms, 500*ms)}, {stPaused, s + g.dur(4500*ms, 7*time.Second)},
			{stRunning, g.dur(3500*ms, 5*time.Second)}, {g.terminalStatus(), 0}}
	case x < 79: // delayed: running well past the delay threshold
		return []step{{stRunning, d + g.dur(4500*ms, 7*time.Second)}, {g.terminalStatus(), 0}}
	case x < 85: // delayed after a pause
		return []step{{stRunning, g.dur(200*ms, 800*ms)}, {stPaused, g.dur(200*ms, 800*ms)},
			{stRunning, d + g.dur(3500*ms, 5*time.Second)}, {g.terminalStatus(), 0}}
	case x < 93: // borderline: ends within the tolerance band of the delay threshold
		return []step{{stRunning, d + g.dur(-300*ms, 300*ms)}, {g.terminalStatus(), 0}}
	default: // inserted already finished
		return []step{{g.terminalStatus(), 0}}
	}
}

// Run creates runs until ctx's window ends (stop closes), then drives the
// runs already started to their end. It returns when every run finished or
// ctx ends.
func (g *generator) Run(ctx context.Context, stop <-chan struct{}) error {
	var live []*active
	nextNew := time.Now()
	creating := true
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			creating = false
			stop = nil
		case <-tick.C:
		}
		now := time.Now()
		for creating && !now.Before(nextNew) {
			a, err := g.start(ctx)
			if err != nil {
				return err
			}
			if a != nil {
				live = append(live, a)
			}
			nextNew = nextNew.Add(time.Duration(g.rng.ExpFloat64() / g.rate * float64(time.Second)))
		}
		keep := live[:0]
		for _, a := range live {
			if !now.Before(a.next) {
				if err := g.advance(ctx, a); err != nil {
					return err
				}
			}
			if len(a.plan) > 0 {
				keep = append(keep, a)
			}
		}
		clear(live[len(keep):])
		live = keep
		if !creating && len(live) == 0 {
			return nil
		}
	}
}

// start inserts a new run; it returns nil when the run is already finished.
func (g *generator) start(ctx context.Context) (*active, error) {
	wf := g.slugs[g.rng.IntN(len(g.slugs))]
	slug, _, _ := strings.Cut(wf, "/")
	plan := g.plan()
	first := plan[0]
	rec := &RunRecord{Slug: slug}
	var updated time.Time
	finished := "null"
	if terminal(first.status) {
		finished = "now()"
	}
	err := g.pool.QueryRow(ctx, `insert into workflow_runs (project_id, workflow_id, status, finished_at)
		values ($1, $2, $3, `+finished+`) returning id, started_at, updated_at`,
		g.project, g.workflows[wf], first.status).Scan(&rec.ID, &rec.Started, &updated)
	if err != nil {
		return nil, fmt.Errorf("chaos: insert run: %w", err)
	}
	rec.Steps = append(rec.Steps, Transition{Status: first.status, At: updated})
	g.record(rec)
	if len(plan) == 1 {
		return nil, nil
	}
	return &active{rec: rec, plan: plan[1:], next: time.Now().Add(first.hold)}, nil
}

// advance writes a's next status.
func (g *generator) advance(ctx context.Context, a *active) error {
	st := a.plan[0]
	a.plan = a.plan[1:]
	finished := "null"
	if terminal(st.status) {
		finished = "now()"
	}
	var updated time.Time
	err := g.pool.QueryRow(ctx, `update workflow_runs set status = $2, finished_at = `+finished+`
		where id = $1 returning updated_at`, a.rec.ID, st.status).Scan(&updated)
	if err != nil {
		return fmt.Errorf("chaos: update run %s to %s: %w", a.rec.ID, st.status, err)
	}
	g.mu.Lock()
	a.rec.Steps = append(a.rec.Steps, Transition{Status: st.status, At: updated})
	g.last = time.Now()
	g.mu.Unlock()
	a.next = time.Now().Add(st.hold)
	return nil
}

func (g *generator) record(rec *RunRecord) {
	g.mu.Lock()
	g.runs = append(g.runs, rec)
	g.last = time.Now()
	g.mu.Unlock()
}

// Runs returns a copy of the record of every run.
func (g *generator) Runs() []*RunRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*RunRecord, len(g.runs))
	for i, r := range g.runs {
		c := *r
		c.Steps = append([]Transition(nil), r.Steps...)
		out[i] = &c
	}
	return out
}

// LastWrite returns when the generator last wrote a run.
func (g *generator) LastWrite() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}
