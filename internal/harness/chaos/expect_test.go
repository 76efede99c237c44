package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func iv(from, to float64) interval { return interval{From: at(from), To: at(to)} }

func TestBlindSetMergesAndMeasures(t *testing.T) {
	bs := newBlindSet([]interval{iv(10, 12), iv(1, 3), iv(2, 5)})
	assert.Equal(t, []interval{iv(1, 5), iv(10, 12)}, bs.merged)
	assert.Equal(t, at(5), bs.endOf(at(2)), "inside: the end of the merged interval")
	assert.Equal(t, at(7), bs.endOf(at(7)), "outside: the time itself")
	assert.True(t, bs.clearStretch(at(0), at(20), 4*time.Second), "5..10 is clear for 5s")
	assert.False(t, bs.clearStretch(at(2), at(11), 5*time.Second), "only 5..10 is clear, not longer than 5s")
	assert.True(t, bs.clearStretch(at(11), at(20), 2*time.Second), "after the last interval")
}

func TestExpectVerdicts(t *testing.T) {
	tm := Timing{Tolerance: 2 * time.Second, Early: 500 * time.Millisecond}
	rules := []RuleSpec{
		{ID: "all", Enabled: true, Events: []string{evSucceeded, evFailed, evCanceled, evPaused}},
		{ID: "timers", Slug: "billing", Enabled: true, Events: []string{evDelayed, evStalled, evRecovered},
			Delay: 3 * time.Second, Stall: 2 * time.Second},
		{ID: "off", Enabled: false, Events: []string{evFailed}},
	}
	run := func(id, slug string, steps ...any) *RunRecord {
		r := &RunRecord{ID: id, Slug: slug, Started: at(0)}
		for i := 0; i < len(steps); i += 2 {
			r.Steps = append(r.Steps, Transition{Status: steps[i].(string), At: at(steps[i+1].(float64))})
		}
		return r
	}
	runs := []*RunRecord{
		run("short", "billing", stRunning, 0.0, stFailed, 1.0),
		run("long", "billing", stRunning, 0.0, stSucceeded, 10.0),
		run("border", "billing", stRunning, 0.0, stSucceeded, 3.2),
		run("stall", "billing", stRunning, 0.0, stPaused, 1.0, stRunning, 8.0, stCanceled, 8.5),
		run("blindpause", "reports", stRunning, 20.0, stPaused, 21.0, stRunning, 21.5, stSucceeded, 22.0),
		run("hidden", "billing", stRunning, 30.0, stSucceeded, 36.0),
	}
	runs[5].Started = at(30)
	blind := Blind{Changes: []interval{iv(20.5, 22)}, Timers: []interval{iv(32, 35)}}
	claimed := map[Key]bool{{"timers", "long", evDelayed}: true}
	x := Expect(rules, runs, blind, tm, func(k Key) bool { return claimed[k] })

	cases := []struct {
		k    Key
		want Verdict
	}{
		{Key{"all", "short", evFailed}, Required},
		{Key{"off", "short", evFailed}, Forbidden},
		{Key{"timers", "short", evDelayed}, Forbidden},
		{Key{"timers", "long", evDelayed}, Required},
		{Key{"timers", "long", evRecovered}, Required},
		{Key{"timers", "border", evDelayed}, Either},
		{Key{"timers", "border", evRecovered}, Forbidden},
		{Key{"timers", "stall", evStalled}, Required},
		{Key{"all", "stall", evPaused}, Required},
		{Key{"all", "stall", evCanceled}, Required},
		{Key{"timers", "stall", evDelayed}, Either /* running again 8..8.5, past 3s, but shorter than the tolerance */},
		{Key{"all", "blindpause", evPaused}, Either},
		{Key{"timers", "blindpause", evStalled}, Forbidden},
		{Key{"timers", "hidden", evDelayed}, Either /* the threshold (33s) falls in a timer-blind stretch until 35s */},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, x.Verdict(c.k), "%+v", c.k)
	}
	assert.Equal(t, 10, x.Count(Required), "terminal events of every run, paused, and the timed alerts above")
}
