package alerts

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func spec(id, project, slug string, events ...string) RuleSpec {
	return RuleSpec{ID: id, ProjectID: project, WorkflowSlug: slug, Name: id, Enabled: true, Events: events,
		WebhookURL: "https://hooks.example.com/" + id}
}

func ids(rules []*Rule) []string {
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		out = append(out, r.ID())
	}
	return out
}

func TestMatchEveryStatusEventAndScope(t *testing.T) {
	set := NewRuleSet()
	require.NoError(t, set.Put(spec("project-failed", "p1", "", "failed")))
	require.NoError(t, set.Put(spec("wf-all", "p1", "billing", "succeeded", "failed", "canceled", "paused")))
	require.NoError(t, set.Put(spec("other-wf", "p1", "etl", "failed")))
	require.NoError(t, set.Put(spec("other-project", "p2", "", "failed", "succeeded")))
	require.NoError(t, set.Put(spec("global", "", "", "canceled")))
	disabled := spec("disabled", "p1", "", "failed")
	disabled.Enabled = false
	require.NoError(t, set.Put(disabled))

	mapping := MeshHookMapping()
	cases := []struct {
		status  string
		project string
		slug    string
		want    []string
	}{
		{"failed", "p1", "billing", []string{"project-failed", "wf-all"}},
		{"failed", "p1", "etl", []string{"project-failed", "other-wf"}},
		{"failed", "p1", "", []string{"project-failed"}},
		{"failed", "p2", "billing", []string{"other-project"}},
		{"failed", "p3", "billing", nil},
		{"succeeded", "p1", "billing", []string{"wf-all"}},
		{"succeeded", "p2", "x", []string{"other-project"}},
		{"canceled", "p1", "billing", []string{"wf-all", "global"}},
		{"canceled", "p9", "", []string{"global"}},
		{"paused", "p1", "billing", []string{"wf-all"}},
		{"paused", "p1", "etl", nil},
		{"running", "p1", "billing", nil},
	}
	for _, c := range cases {
		t.Run(c.status+"/"+c.project+"/"+c.slug, func(t *testing.T) {
			state := mapping.Statuses[c.status]
			e, ok := state.ChangeEvent()
			if !ok {
				assert.Nil(t, c.want, "running announces no event")
				return
			}
			assert.ElementsMatch(t, c.want, ids(set.Match(c.project, c.slug, e)))
		})
	}
}

func TestRuleSetReplaceAndDelete(t *testing.T) {
	set := NewRuleSet()
	require.NoError(t, set.Put(spec("a", "p", "", "failed")))
	require.NoError(t, set.Put(spec("a", "p", "wf", "failed"))) // moved scope
	assert.Empty(t, ids(set.Match("p", "", EventFailed)), "the rule left the project-wide scope")
	assert.Equal(t, []string{"a"}, ids(set.Match("p", "wf", EventFailed)))
	assert.Empty(t, ids(set.Match("p", "other", EventFailed)))

	bad := spec("b", "p", "", "exploded")
	rejected := set.Replace([]RuleSpec{spec("c", "p", "", "failed"), bad})
	require.Contains(t, rejected, "b")
	assert.Contains(t, rejected["b"].Error(), `events: unknown event "exploded"`)
	assert.Equal(t, 1, set.Len())
	_, ok := set.Get("a")
	assert.False(t, ok, "replace drops rules missing from the snapshot")

	set.Delete("c")
	assert.Zero(t, set.Len())
}

func TestCompileRuleNamesEveryBadField(t *testing.T) {
	s := RuleSpec{ID: "r", Events: []string{"delayed", "stalled", "nope"}, WebhookURL: "ftp://x/{{.RunID}}",
		PayloadTemplate: `{"run": {{.RunID}}}`, ThrottleMax: 3}
	_, err := CompileRule(s)
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		`events: unknown event "nope"`,
		"delay_threshold_seconds: required",
		"stall_threshold_seconds: required",
		"throttle:",
		`webhook_url: webhook URL must be http(s), got scheme "ftp"`,
		"payload_template: payload template rendered invalid JSON",
	} {
		assert.Contains(t, msg, want)
	}

	// Each problem is a *FieldError naming its field; its text is "field: why".
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		require.ErrorAs(t, e, &fe, "%v", e)
		assert.Equal(t, fe.Field+": "+fe.Err.Error(), e.Error())
		fields = append(fields, fe.Field)
	}
	assert.ElementsMatch(t, []string{"events", "delay_threshold_seconds", "stall_threshold_seconds", "throttle",
		"webhook_url", "payload_template"}, fields)

	_, err = CompileRule(RuleSpec{ID: "r", Events: []string{"failed"}, WebhookURL: "https://x/{{.Nope"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "webhook_url: template: webhook_url:1: unclosed action")

	// So is a rendering failure.
	r, err := CompileRule(RuleSpec{ID: "r", Events: []string{"failed"}, WebhookURL: "https://x/",
		PayloadTemplate: `{"n": {{len .Run.id}}}`})
	require.NoError(t, err)
	c := SampleContext()
	c.Run["id"] = 5
	_, _, err = r.Render(c)
	var fe *FieldError
	require.ErrorAs(t, err, &fe, "%v", err)
	assert.Equal(t, "payload_template", fe.Field)
}

func TestRenderTemplatedURLAndPayload(t *testing.T) {
	s := spec("r", "p", "", "failed")
	s.WebhookURL = "https://hooks.example.com/{{.Workflow.Slug | pathquote}}/{{.Event}}"
	s.PayloadTemplate = `{"text": {{printf "%s failed after %s" .Workflow.Name .Duration | json}}, "run": {{json .Run}}, "at": {{time "" .OccurredAt | json}}}`
	r, err := CompileRule(s)
	require.NoError(t, err)
	c := SampleContext()
	c.Workflow.Name = `quote " and <tag>`
	url, body, err := r.Render(c)
	require.NoError(t, err)
	assert.Equal(t, "https://hooks.example.com/sample-workflow/failed", url)
	var got map[string]any
	require.NoError(t, json.Unmarshal(body, &got))
	assert.Equal(t, `quote " and <tag> failed after 1m30s`, got["text"])
	assert.Equal(t, "2026-01-02T03:05:35Z", got["at"])
	assert.Equal(t, "failed", got["run"].(map[string]any)["status"])
}

func TestDefaultPayloadSchema(t *testing.T) {
	r, err := CompileRule(spec("r", "p", "", "failed"))
	require.NoError(t, err)
	_, body, err := r.Render(SampleContext())
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(body, &got))
	for _, k := range []string{"type", "event", "occurred_at", "run", "workflow", "project", "rule", "duration_seconds", "link"} {
		assert.Contains(t, got, k)
	}
	assert.Equal(t, "workflow_run.failed", got["type"])
	assert.Equal(t, 90.0, got["duration_seconds"])
}

func TestTemplateOutputIsCapped(t *testing.T) {
	tpl, err := ParseTemplate("p", `"{{range 300}}{{printf "%01000d" 1}}{{end}}"`)
	require.NoError(t, err)
	_, err = tpl.Render(SampleContext())
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "exceeds"), err.Error())
}

func TestParseTimestampForms(t *testing.T) {
	want := time.Date(2025, 11, 3, 9, 32, 55, 123000000, time.UTC)
	for _, s := range []string{"2025-11-03T09:32:55.123+00:00", "2025-11-03T09:32:55.123Z", "2025-11-03 09:32:55.123+00", "2025-11-03T10:32:55.123+01:00"} {
		got, err := ParseTimestamp(s)
		require.NoError(t, err, s)
		assert.True(t, want.Equal(got), "%s -> %s", s, got)
	}
	_, err := ParseTimestamp("yesterday")
	assert.Error(t, err)
}

func TestRunFromRowCustomTable(t *testing.T) {
	m := Mapping{Table: "jobs", IDColumn: "job_id", StatusColumn: "state", UpdatedAtColumn: "modified",
		WorkflowColumn: "kind", Statuses: map[string]State{"done": StateSucceeded, "error": StateFailed, "busy": StateRunning}}
	require.NoError(t, m.Validate())
	r, err := m.RunFromRow(map[string]any{"job_id": json.Number("9007199254740993"), "state": "error", "kind": "nightly", "modified": "2026-01-01T00:00:00+00:00"})
	require.NoError(t, err)
	assert.Equal(t, "9007199254740993", r.ID, "int8 ids keep every digit")
	assert.Equal(t, StateFailed, r.State)
	assert.Equal(t, "nightly", r.WorkflowRef)

	_, err = m.RunFromRow(map[string]any{"state": "error"})
	assert.ErrorContains(t, err, "row has no job_id")
	assert.ErrorContains(t, Mapping{}.Validate(), "table: required")
}

func TestMatchEveryEventAndScope(t *testing.T) {
	// One rule per (scope, event); every query must return exactly the
	// rules of the scopes that apply to it and list the event.
	scopes := map[string][2]string{ // name -> (project, slug)
		"project": {"p1", ""}, "billing": {"p1", "billing"}, "etl": {"p1", "etl"},
		"other-project": {"p2", ""}, "global": {"", ""}, "global-billing": {"", "billing"},
	}
	set := NewRuleSet()
	for name, sc := range scopes {
		for _, ev := range AllEvents {
			s := spec(name+"/"+string(ev), sc[0], sc[1], string(ev))
			s.DelayThreshold, s.StallThreshold = time.Minute, time.Minute
			if ev == EventRecovered {
				s.Events = append(s.Events, "delayed")
			}
			if ev == EventResolved {
				s.Events = append(s.Events, "failed")
			}
			require.NoError(t, set.Put(s))
			off := s
			off.ID, off.Enabled = "disabled/"+s.ID, false
			require.NoError(t, set.Put(off))
		}
	}
	queries := []struct {
		project, slug string
		applies       []string
	}{
		{"p1", "billing", []string{"project", "billing", "global", "global-billing"}},
		{"p1", "etl", []string{"project", "etl", "global"}},
		{"p1", "", []string{"project", "global"}},
		{"p1", "other", []string{"project", "global"}},
		{"p2", "billing", []string{"other-project", "global", "global-billing"}},
		{"p3", "", []string{"global"}},
		{"", "billing", []string{"global", "global-billing"}},
		{"", "", []string{"global"}},
	}
	for _, q := range queries {
		for _, ev := range AllEvents {
			t.Run(q.project+"/"+q.slug+"/"+string(ev), func(t *testing.T) {
				var want []string
				for _, sc := range q.applies {
					want = append(want, sc+"/"+string(ev))
					if ev == EventDelayed {
						want = append(want, sc+"/recovered") // it lists delayed too
					}
					if ev == EventFailed {
						want = append(want, sc+"/resolved") // it lists failed too
					}
				}
				assert.ElementsMatch(t, want, ids(set.Match(q.project, q.slug, ev)))
			})
		}
	}
}

func TestStatusesMapToEvents(t *testing.T) {
	m := MeshHookMapping()
	cases := []struct {
		status   string
		change   Event // "" when the state announces nothing by itself
		timer    Event // "" when no timer applies
		terminal bool
	}{
		{"running", "", EventDelayed, false},
		{"paused", EventPaused, EventStalled, false},
		{"succeeded", EventSucceeded, "", true},
		{"failed", EventFailed, "", true},
		{"canceled", EventCanceled, "", true},
		{"queued", "", "", false}, // not mapped
	}
	for _, c := range cases {
		t.Run(c.status, func(t *testing.T) {
			st := m.Statuses[c.status]
			ev, ok := st.ChangeEvent()
			assert.Equal(t, c.change, ev)
			assert.Equal(t, c.change != "", ok)
			tev, ok := st.TimerEvent()
			assert.Equal(t, c.timer, tev)
			assert.Equal(t, c.timer != "", ok)
			assert.Equal(t, c.timer != "", st.Timed())
			assert.Equal(t, c.terminal, st.Terminal())
		})
	}
	assert.Equal(t, []string{"paused", "running"}, m.StatusValues(StateRunning, StatePaused))
}

func TestIdenticalTemplatesAreSharedAndStaticOnesNotParsed(t *testing.T) {
	const url = "https://hooks.example.com/{{.Workflow.Slug}}/shared-intern-test"
	const payload = `{"run": {{json .RunID}}, "intern": "shared-intern-test"}`
	var rules []*Rule
	for i := range 50 {
		s := spec("r", "p", "", "failed")
		s.WebhookURL, s.PayloadTemplate = url, payload
		if i%2 == 1 {
			s.WebhookURL = "https://static.example.com/hook/" + strings.Repeat("x", i)
		}
		r, err := CompileRule(s)
		require.NoError(t, err)
		rules = append(rules, r)
	}
	// Both sources are text around plain actions: split, with one shared
	// parse tree per action.
	for _, r := range rules[1:] {
		assert.Same(t, rules[0].payload.segs[1].act, r.payload.segs[1].act, "one parse tree per payload action")
	}
	assert.Same(t, rules[0].urlT.segs[1].act, rules[2].urlT.segs[1].act, "one parse tree per URL action")
	assert.Nil(t, rules[0].urlT.t)

	// A source with control structures is parsed whole, once.
	var whole []*Rule
	for range 3 {
		s := spec("w", "p", "", "failed")
		s.PayloadTemplate = `{"run": {{if .RunID}}{{json .RunID}}{{else}}null{{end}}, "intern": "shared-intern-test"}`
		r, err := CompileRule(s)
		require.NoError(t, err)
		whole = append(whole, r)
	}
	require.NotNil(t, whole[0].payload.t)
	assert.Same(t, whole[0].payload, whole[2].payload, "one parse tree per payload source")
	runtime.KeepAlive(whole)
	assert.Nil(t, rules[1].urlT, "a static URL is never parsed")
	assert.Equal(t, rules[1].url, rules[1].Spec().WebhookURL)

	// A broken template shared by many rules is rejected for each of them.
	for range 3 {
		_, err := CompileRule(RuleSpec{ID: "b", Events: []string{"failed"}, WebhookURL: "https://x.example/{{.Nope"})
		assert.ErrorContains(t, err, "webhook_url: template: webhook_url:1: unclosed action")
	}
	runtime.KeepAlive(rules)
}

func TestInternedTemplatesAreCollectedWhenUnused(t *testing.T) {
	// Count only this test's own sources: other tests' templates may be
	// collected (or still be alive) while it runs.
	srcs := make([]string, 20)
	for i := range srcs {
		srcs[i] = fmt.Sprintf(`{"gc_probe": %d, "run": {{with .RunID}}{{json .}}{{end}}}`, i) // not split: interned whole
	}
	live := func() int {
		interned.Lock()
		defer interned.Unlock()
		n := 0
		for _, src := range srcs {
			if _, ok := interned.m[internKey{kindPayload, src}]; ok {
				n++
			}
		}
		return n
	}
	func() {
		var rules []*Rule
		for _, src := range srcs {
			s := spec("r", "p", "", "failed")
			s.PayloadTemplate = src
			r, err := CompileRule(s)
			require.NoError(t, err)
			rules = append(rules, r)
		}
		assert.Equal(t, len(srcs), live())
		runtime.KeepAlive(rules)
	}()
	require.Eventually(t, func() bool {
		runtime.GC()
		return live() == 0
	}, 10*time.Second, 10*time.Millisecond, "entries of collected templates are removed")
}

func TestReloadIsInvisibleUntilCommitted(t *testing.T) {
	rs := NewRuleSet()
	require.Empty(t, rs.Replace([]RuleSpec{spec("a", "p", "", "failed")}))

	r := rs.Reload()
	r.Add(spec("b", "p", "", "failed"))
	bad := spec("c", "p", "", "failed")
	bad.Events = nil
	r.Add(bad)
	assert.Equal(t, []string{"a"}, ids(rs.Match("p", "", EventFailed)), "the set serves its rules until the reload is committed")

	rejected := r.Commit()
	require.Len(t, rejected, 1)
	assert.ErrorContains(t, rejected["c"], "events")
	assert.Equal(t, []string{"b"}, ids(rs.Match("p", "", EventFailed)), "a rule missing from the reload is gone")
	assert.Contains(t, rs.Rejected(), "c")
}

func TestSpecRoundTripsThroughACompiledRule(t *testing.T) {
	in := RuleSpec{
		ID: "r1", ProjectID: "p", WorkflowSlug: "billing", Name: "billing failures", Enabled: true,
		Events:         []string{"recovered", "failed", "delayed"},
		DelayThreshold: 90 * time.Second, WebhookURL: "https://hooks.example.com/{{.RunID}}/x",
		Secrets: []string{"whsec_a", "whsec_b"}, MeshHookSignature: true, Headers: map[string]string{"X-Team": "ops"},
		PayloadTemplate: `{"run": {{json .RunID}}}`, ThrottleMax: 3, ThrottleWindow: time.Minute,
		CreatedAt: time.Date(2026, 3, 4, 5, 6, 7, 891, time.UTC),
	}
	r, err := CompileRule(in)
	require.NoError(t, err)
	out := r.Spec()
	assert.Equal(t, []string{"failed", "delayed", "recovered"}, out.Events, "events come back in AllEvents order")
	out.Events = in.Events
	assert.Equal(t, in, out)
	assert.True(t, r.same(in))
	assert.True(t, r.same(r.Spec()), "listing events in another order is the same rule")
	changed := in
	changed.Secrets = []string{"whsec_a"}
	assert.False(t, r.same(changed), "a rotated secret is a change")

	_, err = CompileRule(RuleSpec{ID: "t", Events: []string{"failed"}, WebhookURL: "https://x.example", ThrottleMax: 1 << 40, ThrottleWindow: time.Second})
	assert.ErrorContains(t, err, "throttle_max")

	noDate, err := CompileRule(RuleSpec{ID: "n", Events: []string{"failed"}, WebhookURL: "https://x.example"})
	require.NoError(t, err)
	assert.True(t, noDate.CreatedAt().IsZero(), "an unknown creation time stays unknown")
	assert.False(t, predates(noDate, time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)), "and never holds an alert back")
}

func TestPutOfAnUnchangedRuleKeepsIt(t *testing.T) {
	rs := NewRuleSet()
	require.NoError(t, rs.Put(spec("a", "p", "", "failed")))
	a1, _ := rs.Get("a")
	v := rs.Version()
	require.NoError(t, rs.Put(spec("a", "p", "", "failed")))
	a2, _ := rs.Get("a")
	assert.Same(t, a1, a2, "the same spec again is not compiled again")
	assert.Equal(t, v, rs.Version())

	changed := spec("a", "p", "", "failed")
	changed.Name = "renamed"
	require.NoError(t, rs.Put(changed))
	a3, _ := rs.Get("a")
	assert.Equal(t, "renamed", a3.Name())
	assert.Greater(t, rs.Version(), v)
}

func TestCompiledRuleOwnsItsStrings(t *testing.T) {
	in := spec("r1", "p", "", "failed")
	in.Name = "billing"
	in.Secrets = []string{"whsec_one"}
	r, err := CompileRule(in)
	require.NoError(t, err)
	in.Secrets[0] = "whsec_changed" // the caller's slice is not the rule's
	assert.Equal(t, []string{"whsec_one"}, r.Secrets())
	assert.Equal(t, "r1", r.ID())
	assert.Equal(t, "billing", r.Name())

	two := spec("r2", "p", "", "failed")
	two.Secrets = []string{"whsec_a", "whsec_b"}
	r2, err := CompileRule(two)
	require.NoError(t, err)
	two.Secrets[1] = "whsec_changed"
	assert.Equal(t, []string{"whsec_a", "whsec_b"}, r2.Secrets())
	two.Secrets[1] = "whsec_b"
	assert.True(t, r2.same(two))
}

// A rule deleted while a full load is read (the sender disabling a rule
// whose endpoint is gone) stays deleted when the load is committed: the
// load may have read it before it was disabled.
func TestRuleDeletedDuringAReloadStaysDeleted(t *testing.T) {
	set := NewRuleSet()
	timed := RuleSpec{ID: "gone", ProjectID: "p1", Name: "gone", Enabled: true, Events: []string{"failed", "delayed"},
		DelayThreshold: time.Minute, WebhookURL: "https://hooks.example.com/gone"}
	kept := RuleSpec{ID: "kept", ProjectID: "p1", Name: "kept", Enabled: true, Events: []string{"failed"},
		WebhookURL: "https://hooks.example.com/kept"}
	require.Empty(t, set.Replace([]RuleSpec{timed, kept}))
	require.True(t, set.HasTimed())

	r := set.Reload()
	r.Add(timed) // read before the sender disabled it
	r.Add(kept)
	set.Delete("gone")
	r.Commit()
	_, ok := set.Get("gone")
	assert.False(t, ok, "the load does not bring back the deleted rule")
	assert.Len(t, set.Match("p1", "", EventFailed), 1, "nor is it matched")
	assert.False(t, set.HasTimed(), "nor counted as timed")
	_, ok = set.Get("kept")
	assert.True(t, ok)

	r = set.Reload()
	r.Add(timed)
	r.Commit()
	_, ok = set.Get("gone")
	assert.True(t, ok, "a later load reads it afresh")
}
