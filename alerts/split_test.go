package alerts

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSplitTemplatesRenderLikeTheWhole renders sources both split at their
// actions and whole, against the sample context: the output is the same.
func TestSplitTemplatesRenderLikeTheWhole(t *testing.T) {
	c := SampleContext()
	for _, src := range []string{
		`https://hooks.example.com/{{.Workflow.Slug}}/runs/{{.RunID}}`,
		`https://hooks.example.com/a/{{- .RunID -}} /b`,
		`{"run": {{json .RunID}}, "d": {{json .Duration}}, "s": {{printf "%s-%s" .Workflow.Slug .Event | json}}}`,
		`{"id": {{json $.RunID}}, "status": {{.Run.status | json}}, "missing": {{json .Run.nope}}}`,
		`{"text": {{printf "%s failed after %s" .Workflow.Name .Duration | json}}}`,
	} {
		whole, err := ParseTemplate("t", src)
		require.NoError(t, err, src)
		want, err := whole.Render(c)
		require.NoError(t, err, src)
		segs, ok := splitTemplate(kindPayload, src)
		require.True(t, ok, "%s splits", src)
		got, err := (&Template{src: src, segs: segs}).Render(c)
		require.NoError(t, err, src)
		assert.Equal(t, string(want), string(got), src)
	}
}

func TestTemplatesWithControlOrVariablesAreNotSplit(t *testing.T) {
	for _, src := range []string{
		`https://x.example/{{if .RunID}}a{{else}}b{{end}}`,
		`https://x.example/{{range .RecoveredFrom}}{{.}}{{end}}`,
		`https://x.example/{{with .Workflow}}{{.Slug}}{{end}}`,
		`https://x.example/{{$s := .Workflow.Slug}}{{$s}}`,
		`{{.RunID}}`, // a lone action is the shared unit itself
		`https://x.example/{{define "x"}}y{{end}}{{template "x"}}`,
	} {
		_, ok := splitTemplate(kindURL, src)
		assert.False(t, ok, src)
	}
}

func TestURLsDifferingInTextShareTheirActions(t *testing.T) {
	var rules []*Rule
	for i := range 100 {
		s := spec(fmt.Sprintf("r%d", i), "p", "", "failed")
		s.WebhookURL = fmt.Sprintf("https://hooks.example.com/customer/%d/{{.RunID}}", i)
		r, err := CompileRule(s)
		require.NoError(t, err)
		rules = append(rules, r)
	}
	act := rules[0].urlT.segs[1].act
	require.NotNil(t, act)
	for _, r := range rules {
		require.Nil(t, r.urlT.t, "no parse tree of its own")
		assert.Same(t, act, r.urlT.segs[1].act, "one parse tree for the shared action")
	}
	u, _, err := rules[7].Render(SampleContext())
	require.NoError(t, err)
	assert.Equal(t, "https://hooks.example.com/customer/7/00000000-0000-4000-8000-000000000001", u)

	_, err = CompileRule(RuleSpec{ID: "bad", Events: []string{"failed"}, WebhookURL: "ftp://x.example/{{.RunID}}"})
	assert.ErrorContains(t, err, "webhook_url", "a split URL is still checked as a whole")
}

func TestReloadKeepsUnchangedRules(t *testing.T) {
	rs := NewRuleSet()
	specs := func() []RuleSpec {
		a := spec("a", "p", "billing", "failed")
		a.Headers = map[string]string{} // as decoded from '{}'
		b := spec("b", "p", "", "failed", "succeeded")
		b.WebhookURL = "https://hooks.example.com/{{.RunID}}/x"
		return []RuleSpec{a, b}
	}
	require.Empty(t, rs.Replace(specs()))
	a1, _ := rs.Get("a")
	b1, _ := rs.Get("b")

	next := specs()
	next[1].Name = "renamed"
	require.Empty(t, rs.Replace(next))
	a2, _ := rs.Get("a")
	b2, _ := rs.Get("b")
	assert.Same(t, a1, a2, "an unchanged rule is kept, not compiled again")
	assert.NotSame(t, b1, b2, "a changed rule is compiled again")
	assert.Equal(t, "renamed", b2.Name())
	assert.Len(t, rs.Match("p", "billing", EventFailed), 2)
}
