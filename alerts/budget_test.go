package alerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// renderBound is the most a render may allocate in all, garbage included:
// the budget of the string-building functions, the capped output and its
// buffer's growth, text/template's own bookkeeping for each step (about
// 150 bytes an iteration; 1 KiB allowed), and slack.
const renderBound = maxAllocBytes + 4*MaxPayloadBytes + maxSteps<<10 + 4<<20

// hostile is the adversarial corpus: templates a tenant could save to pin
// a core or exhaust memory. Each must be refused when parsed, or render
// within budget (often with an error naming the budget).
var hostile = []struct {
	name, src string
	refused   string // when set, parsing fails with this in the error
}{
	{name: "range over a huge literal", src: `{{range $i := 1000000000000000}}{{end}}{}`, refused: "at most 10000 iterations"},
	{name: "range over a negative or float literal", src: `{{range 1.5}}{{end}}{}`, refused: "iterations"},
	{name: "string doubling", src: `{{$x := "aaaaaaaa"}}{{range $i := 27}}{{$x = printf "%s%s" $x $x}}{{end}}{{len $x}}`},
	{name: "unrolled doubling", src: `{{$x := "aaaaaaaa"}}` + strings.Repeat(`{{$x = printf "%s%s" $x $x}}`, 40) + `{{len $x}}`},
	{name: "declared doubling", src: func() string {
		var b strings.Builder
		b.WriteString(`{{$x0 := "aaaaaaaa"}}`)
		for i := 1; i <= 40; i++ {
			fmt.Fprintf(&b, `{{$x%d := print $x%d $x%d}}`, i, i-1, i-1)
		}
		return b.String() + `{{len $x40}}`
	}()},
	{name: "nested ranges", src: `{{range $i := 10000}}{{range $j := 10000}}{{end}}{{end}}{}`},
	{name: "deeply nested ranges over the run", src: strings.Repeat(`{{range $.Run}}`, 12) + strings.Repeat(`{{end}}`, 12) + `{}`},
	{name: "huge printf width", src: `{{printf "%999999999d" 1}}`, refused: ""},
	{name: "printf star width", src: `{{printf "%*d" 999999999 1}}`},
	{name: "printf indexed reuse", src: `{{$x := printf "%01000d" 1}}{{range 100}}{{$x = printf "%[1]s%[1]s%[1]s%[1]s" $x}}{{end}}{{len $x}}`},
	{name: "long pipeline", src: `{{.RunID` + strings.Repeat(` | upper | lower`, 2000) + ` | json}}`},
	{name: "json escaping growth", src: `{{$x := "<&>\"\\"}}{{range 40}}{{$x = json $x}}{{end}}{{len $x}}`},
	{name: "html escaping growth", src: `{{$x := "<&>"}}{{range 40}}{{$x = html $x $x}}{{end}}{{len $x}}`},
	{name: "js escaping growth", src: `{{$x := "<&>"}}{{range 40}}{{$x = js $x $x}}{{end}}{{len $x}}`},
	{name: "println growth", src: `{{$x := "aaaa"}}{{range 40}}{{$x = println $x $x}}{{end}}{{len $x}}`},
	{name: "urlquery growth", src: `{{$x := "%%%%"}}{{range 40}}{{$x = urlquery (print $x $x)}}{{end}}{{len $x}}`},
	{name: "time layout growth", src: `{{$x := "MondayMonday"}}{{range 40}}{{$x = time (print $x $x) $.OccurredAt}}{{end}}{{len $x}}`},
	{name: "time.Format chain", src: `{{$a := .OccurredAt.Format "MondayMonday"}}{{$a}}`, refused: ".Format is not allowed"},
	{name: "AppendFormat", src: `{{.OccurredAt.AppendFormat nil "Monday"}}`, refused: ".AppendFormat is not allowed"},
	{name: "Format on a variable", src: `{{$t := .OccurredAt}}{{$t.Format "Monday"}}`, refused: ".Format is not allowed"},
	{name: "Format on a pointer field", src: `{{with .StartedAt}}{{.Format "Monday"}}{{end}}`, refused: ".Format is not allowed"},
	{name: "recursion through define", src: `{{define "a"}}{{template "a" .}}{{template "a" .}}{{end}}{{template "a" .}}`, refused: "not supported"},
	{name: "template call", src: `{{template "x" .}}`, refused: "not supported"},
	{name: "block", src: `{{block "b" .}}{{.RunID}}{{end}}`, refused: "not supported"},
	{name: "step forged", src: `{{_step $ -100000000}}{{range 10000}}{{range 10000}}{{end}}{{end}}`, refused: "is not a function"},
	{name: "step as argument", src: `{{print _step}}`, refused: "is not a function"},
	{name: "output flood", src: `{{range 10000}}{{printf "%01000d" 1}}{{end}}`},
	{name: "slice and index loop", src: `{{range $i := 10000}}{{range $j := 10000}}{{index $.Run "id"}}{{end}}{{end}}`},
	{name: "default payload in a loop", src: `{{range 10000}}{{$.Default}}{{end}}`},
	{name: "source too large", src: `"` + strings.Repeat("a", maxSourceBytes) + `{{.RunID}}"`, refused: "at most 65536"},
}

func TestHostileTemplatesAreRefusedOrBounded(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range hostile {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := ParseTemplate("payload_template", tc.src)
			if tc.refused != "" {
				require.Error(t, err, "refused when parsed")
				assert.Contains(t, err.Error(), tc.refused)
				return
			}
			if err != nil {
				t.Logf("refused when parsed: %v", err)
				return
			}
			allocated, out, err := renderMeasured(tpl, SampleContext())
			assert.LessOrEqual(t, allocated, uint64(renderBound), "allocated within bound")
			assert.LessOrEqual(t, len(out), MaxPayloadBytes)
			t.Logf("rendered %d bytes, allocated %d, err=%v", len(out), allocated, err)
		})
	}
}

// TestBudgetErrorsNameTheCause checks the refusals a tenant sees at save or
// load say what went wrong.
func TestBudgetErrorsNameTheCause(t *testing.T) {
	for src, want := range map[string]string{
		`{{range $i := 10000}}{{range $j := 10000}}{{end}}{{end}}{}`:                          "more than 10000 steps in loops",
		`{{$x := "aaaaaaaa"}}{{range $i := 27}}{{$x = printf "%s%s" $x $x}}{{end}}{{len $x}}`: "would build more than 4194304 bytes",
		`{{printf "%999999999d" 1}}`:                 "width or precision over 1000",
		`{{printf "%*d" 99 1}}`:                      "'*' width or precision is not allowed",
		`{{range 300}}{{printf "%01000d" 1}}{{end}}`: "exceeds 262144 bytes",
	} {
		tpl, err := ParseTemplate("payload_template", src)
		require.NoError(t, err, src)
		_, err = tpl.Render(SampleContext())
		require.Error(t, err, src)
		if errors.Is(err, errBudget) && strings.Contains(err.Error(), "took longer than") {
			// A machine busy enough (and -race) can reach the deadline
			// before the step or byte budget: still the render budget.
			continue
		}
		assert.Contains(t, err.Error(), want, src)
	}
}

// TestHostileRulesAreRejectedWithTheField checks that a rule carrying such a
// template is rejected when compiled (at save and at load), naming the field.
func TestHostileRulesAreRejectedWithTheField(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, src := range []string{
		`{{range $i := 1000000000000000}}{{end}}{}`,
		`{{$x := "aaaaaaaa"}}{{range $i := 27}}{{$x = printf "%s%s" $x $x}}{{end}}{{len $x}}`,
		`{{range $i := 10000}}{{range $j := 10000}}{{end}}{{end}}{}`,
	} {
		s := spec("r", "p", "", "failed")
		s.PayloadTemplate = src
		_, err := CompileRule(s)
		require.Error(t, err, src)
		assert.Contains(t, err.Error(), "payload_template", src)

		u := spec("u", "p", "", "failed")
		u.WebhookURL = "https://hooks.example.com/" + src
		_, err = CompileRule(u)
		require.Error(t, err, src)
		assert.Contains(t, err.Error(), "webhook_url", src)
	}
}

// TestDocumentedTemplatesStillRender renders docs/rules.md's examples and the
// ordinary constructs a bounded template must keep.
func TestDocumentedTemplatesStillRender(t *testing.T) {
	c := SampleContext()
	c.RecoveredFrom = []Event{EventDelayed, EventStalled}
	for src, want := range map[string]string{
		`{"text": {{printf "%s failed after %s" .Workflow.Name .Duration | json}}, "run": {{json .RunID}}}`: `{"text": "Sample workflow failed after 1m30s", "run": "00000000-0000-4000-8000-000000000001"}`,
		`https://hooks.example.com/{{.Workflow.Slug}}`:                                                      `https://hooks.example.com/sample-workflow`,
		`{{range $i, $e := .RecoveredFrom}}{{if $i}},{{end}}{{$e}}{{end}}`:                                  `delayed,stalled`,
		`{{$n := 0}}{{range $k, $v := .Run}}{{$n = len $k}}{{end}}{{$n}}`:                                   `11`,
		`{{range 3}}{{.}}{{end}}`:                                                  `012`,
		`{{time "2006-01-02" .OccurredAt}} {{time "" .StartedAt}}`:                 `2026-01-02 2026-01-02T03:04:05Z`,
		`{{upper .Status}} {{lower "A"}} {{urlquery "a b"}} {{pathquote "a/b"}}`:   `FAILED a a+b a%2Fb`,
		`{{default "none" .Run.missing}} {{print 1 2}} {{html "<"}} {{js "'"}}`:    `none 1 2 &lt; \'`,
		`{{with .StartedAt}}{{.Unix}}{{end}} {{.Duration.Seconds}} {{len .RunID}}`: `1767323045 90 36`,
		`{{.Run.status | printf "%q"}}`:                                            `"failed"`,
		`{{printf "%-10s|%5.2f" "x" 3.14159}}`:                                     `x         | 3.14`,
	} {
		tpl, err := ParseTemplate("t", src)
		require.NoError(t, err, src)
		got, err := tpl.Render(c)
		require.NoError(t, err, src)
		assert.Equal(t, want, string(got), src)
	}
}

// TestTemplatesRunOnlyUnderRender checks a bounded template executed some
// other way than Render has no budget to spend.
func TestTemplatesRunOnlyUnderRender(t *testing.T) {
	tpl, err := ParseTemplate("t", `{{range 2}}x{{end}}`)
	require.NoError(t, err)
	var sb strings.Builder
	assert.ErrorContains(t, tpl.execute(&sb, SampleContext()), "budget")
}

// renderMeasured renders tpl and reports the bytes allocated meanwhile.
func renderMeasured(tpl *Template, c *Context) (uint64, []byte, error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := tpl.Render(c)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, out, err
}

// FuzzTemplateRender parses and renders arbitrary template sources: a
// render must allocate within bound, return output within the cap, and
// leave no goroutine behind.
func FuzzTemplateRender(f *testing.F) {
	for _, tc := range hostile {
		if len(tc.src) < 4096 {
			f.Add(tc.src)
		}
	}
	for _, s := range []string{
		`{"text": {{printf "%s failed after %s" .Workflow.Name .Duration | json}}, "run": {{json .RunID}}}`,
		`https://hooks.example.com/{{.Workflow.Slug}}/{{.RunID | pathquote}}`,
		`{{range $k, $v := .Run}}{{$k}}={{$v}};{{end}}`,
		`{{$x := .RunID}}{{range 10}}{{$x = print $x $x}}{{end}}{{len $x}}`,
	} {
		f.Add(s)
	}
	// The fuzzing engine's own goroutines (its worker's signal handler)
	// start after this; only a render's may not outlive it.
	ignore := []goleak.Option{goleak.IgnoreCurrent(), goleak.IgnoreTopFunction("os/signal.NotifyContext.func1")}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := ParseTemplate("payload_template", src)
		if err != nil {
			return
		}
		c := SampleContext()
		allocated, out, _ := renderMeasured(tpl, c)
		if allocated > renderBound {
			t.Fatalf("render of %q allocated %d bytes (bound %d)", src, allocated, renderBound)
		}
		if len(out) > MaxPayloadBytes {
			t.Fatalf("render of %q returned %d bytes", src, len(out))
		}
		goleak.VerifyNone(t, ignore...)
	})
}

// BenchmarkCostliestAcceptedTemplate renders templates that stay just
// within the budget: the most CPU (loops up to the step budget) and the
// most string building (up to the byte budget) a rule can ask for.
func BenchmarkCostliestAcceptedTemplate(b *testing.B) {
	for _, bc := range []struct{ name, src string }{
		{"steps", `{{range $i := 1500}}{{range $j := 3}}{{end}}{{end}}{}`},
		{"steps_with_work", `{{range $i := 750}}{{range $j := 2}}{{if eq $.RunID "x"}}{{end}}{{end}}{{end}}{}`},
		{"bytes", `{{$x := printf "%01000d" 1}}{{range 9}}{{$x = print $x $x}}{{end}}{{json (len $x)}}`},
		{"output", `[{{range $i := 1000}}{{if $i}},{{end}}{{json $.RunID}}{{end}}]`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tpl, err := ParseTemplate("payload_template", bc.src)
			require.NoError(b, err)
			c := SampleContext()
			out, err := tpl.Render(c)
			require.NoError(b, err, "within budget")
			require.True(b, json.Valid(out))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tpl.Render(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
