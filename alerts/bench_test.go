package alerts

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap"
)

// The benchmark population: 100k rules spread over 10k workflows (1k
// projects of 10 workflows), 90% of them scoped to one workflow and 10% to a
// whole project. Strings are built per rule, as decoding the REST snapshot
// does. Most URLs are static and unique (chat or incident-tool hooks); the
// rest, and every payload template, come from a small shared set.
const (
	benchProjects  = 1000
	benchWorkflows = 10 // per project
	benchRules     = 100_000
)

var benchURLTemplates = []string{
	"https://hooks.example.com/{{.Workflow.Slug | pathquote}}/{{.Event}}",
	"https://alerts.example.net/v1/runs/{{.RunID}}?project={{.Project.ID | urlquery}}",
	"https://ops.example.org/webhook/{{.Project.ID}}/{{.Workflow.Slug}}",
}

var benchPayloadTemplates = []string{
	`{"text": {{printf "%s %s (%s)" .Workflow.Slug .Event .Status | json}}, "run": {{json .RunID}}}`,
	`{"summary": {{printf "%s: run %s %s" .Workflow.Name .RunID .Event | json}}, "severity": "error", "source": "meshhook", "link": {{json .Link}}}`,
	`{"event": {{json .Event}}, "run": {{json .Run}}, "suppressed": {{.SuppressedCount}}}`,
}

func uuidish(rng *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xfff,
		rng.Uint32()&0xfff, rng.Uint64()&0xffffffffffff)
}

type benchWorld struct {
	projects []string
	specs    []RuleSpec
}

func newBenchWorld() *benchWorld {
	rng := rand.New(rand.NewPCG(1, 2))
	w := &benchWorld{}
	for range benchProjects {
		w.projects = append(w.projects, uuidish(rng))
	}
	events := []string{"succeeded", "failed", "canceled", "paused"}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range benchRules {
		p := w.projects[rng.IntN(benchProjects)]
		s := RuleSpec{ID: uuidish(rng), ProjectID: p, Name: fmt.Sprintf("rule %d", i), Enabled: true,
			Secrets:   []string{fmt.Sprintf("whsec_%032x", rng.Uint64())},
			CreatedAt: created}
		if rng.IntN(10) != 0 {
			s.WorkflowSlug = fmt.Sprintf("workflow-%d", rng.IntN(benchWorkflows))
		}
		s.Events = []string{events[rng.IntN(len(events))]}
		if rng.IntN(2) == 0 {
			s.Events = append(s.Events, "failed")
		}
		if rng.IntN(5) == 0 {
			s.Events = append(s.Events, "delayed", "recovered")
			s.DelayThreshold = time.Duration(60+rng.IntN(3600)) * time.Second
		}
		if rng.IntN(10) < 7 {
			s.WebhookURL = fmt.Sprintf("https://hooks.example.com/services/T%07d/B%09d/%016x", rng.IntN(1e7), i, rng.Uint64())
		} else {
			s.WebhookURL = benchURLTemplates[rng.IntN(len(benchURLTemplates))]
		}
		if rng.IntN(5) == 0 {
			s.PayloadTemplate = benchPayloadTemplates[rng.IntN(len(benchPayloadTemplates))]
		}
		if rng.IntN(10) == 0 {
			s.Headers = map[string]string{"Authorization": fmt.Sprintf("Bearer %016x", rng.Uint64())}
		}
		w.specs = append(w.specs, s)
	}
	return w
}

func heapInUse() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkRuleSetMemory reports the heap held per cached rule (B/rule),
// strings and shared templates included, measured with ReadMemStats around
// building the set from freshly built specs.
func BenchmarkRuleSetMemory(b *testing.B) {
	var perRule float64
	for b.Loop() {
		b.StopTimer()
		before := heapInUse()
		b.StartTimer()
		w := newBenchWorld()
		set := NewRuleSet()
		if rejected := set.Replace(w.specs); len(rejected) > 0 {
			b.Fatalf("rejected: %v", rejected)
		}
		b.StopTimer()
		w = nil
		after := heapInUse()
		perRule = float64(after-before) / benchRules
		runtime.KeepAlive(set)
		runtime.KeepAlive(w)
		b.StartTimer()
	}
	b.ReportMetric(perRule, "B/rule")
}

// benchEngine is an engine over the bench population whose workflow cache
// already knows every workflow version (as it does after warming up).
func benchEngine(b *testing.B) (*Engine, []map[string]any) {
	b.Helper()
	w := newBenchWorld()
	store := newFakeStore()
	e, err := New(Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs"}, store, &fakeSubmitter{}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	e.rules.Replace(w.specs)
	rng := rand.New(rand.NewPCG(3, 4))
	statuses := []string{"succeeded", "failed", "canceled", "paused", "running"}
	now := time.Now().UTC()
	rows := make([]map[string]any, 10_000)
	for i := range rows {
		p := w.projects[rng.IntN(benchProjects)]
		wfID := uuidish(rng)
		e.wf[wfID] = Workflow{WorkflowInfo: WorkflowInfo{ID: wfID, Slug: fmt.Sprintf("workflow-%d", rng.IntN(benchWorkflows)), Version: 1}, ProjectID: p}
		rows[i] = map[string]any{"id": uuidish(rng), "project_id": p, "workflow_id": wfID,
			"status": statuses[rng.IntN(len(statuses))], "started_at": now.Add(-time.Minute).Format(time.RFC3339Nano),
			"finished_at": now.Format(time.RFC3339Nano), "created_at": now.Add(-time.Minute).Format(time.RFC3339Nano),
			"updated_at": now.Format(time.RFC3339Nano)}
	}
	return e, rows
}

// BenchmarkMatch is the matcher's throughput (runs/s) over 100k cached
// rules: read the row through the mapping, resolve its workflow (cached) and
// find the rules that want its event.
func BenchmarkMatch(b *testing.B) {
	e, rows := benchEngine(b)
	ctx := context.Background()
	var buf []*Rule
	matched := 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		run, err := e.opts.Mapping.RunFromRow(rows[i%len(rows)])
		if err != nil {
			b.Fatal(err)
		}
		i++
		wf, project := e.workflowOf(ctx, run)
		ev, ok := run.State.ChangeEvent()
		if !ok {
			ev, _ = run.State.TimerEvent()
		}
		buf = e.rules.MatchAppend(buf[:0], project, wf.Slug, ev)
		matched += len(buf)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
	b.ReportMetric(float64(matched)/float64(b.N), "rules/run")
}

// BenchmarkProcessRow is a whole run change without the network: match,
// render every matching rule's alert and claim it (an in-memory store that
// reports the alert as already claimed, so nothing is submitted).
func BenchmarkProcessRow(b *testing.B) {
	e, rows := benchEngine(b)
	e.store = dupStore{e.store}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e.processRow(ctx, rows[i%len(rows)], time.Now(), time.Time{})
		e.flush(ctx)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}

// dupStore reports every claim as already made.
type dupStore struct{ Store }

func (dupStore) Claim(_ context.Context, cs []Claim) ([]ClaimResult, error) {
	return make([]ClaimResult, len(cs)), nil
}
