package api

import (
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// maxCheckedVersions bounds the rule versions whose check results one
// generation of the cache holds; with the previous generation, the cache
// holds at most twice as many (a few MiB).
const maxCheckedVersions = 10000

// ruleVersion names one version of a stored rule: every write of a rule
// changes its updated_at (a trigger sets it).
type ruleVersion struct {
	id      string
	updated int64 // updated_at, Unix nanoseconds
}

func versionOf(c supabase.AlertConfig) ruleVersion {
	return ruleVersion{id: c.ID, updated: c.UpdatedAt.UnixNano()}
}

// checkCache remembers what is wrong with stored rules (by field; empty
// when usable), by version, so that a listing neither renders a rule nor
// compiles it again for every request: each version is checked once. It keeps two generations of at most
// maxCheckedVersions entries each and drops the older one when the newer
// fills, so its memory is bounded whatever the number of rules. It is safe
// for concurrent use.
type checkCache struct {
	mu       sync.Mutex
	cur, old map[ruleVersion]fieldErrors
	max      int
}

func newCheckCache(max int) *checkCache {
	return &checkCache{cur: map[ruleVersion]fieldErrors{}, max: max}
}

func (c *checkCache) get(v ruleVersion) (fieldErrors, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.cur[v]; ok {
		return ch, true
	}
	ch, ok := c.old[v]
	if ok {
		c.putLocked(v, ch) // still in use: keep it through the next turnover
	}
	return ch, ok
}

func (c *checkCache) put(v ruleVersion, ch fieldErrors) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(v, ch)
}

func (c *checkCache) putLocked(v ruleVersion, ch fieldErrors) {
	if _, ok := c.cur[v]; !ok && len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[ruleVersion]fieldErrors, c.max)
	}
	c.cur[v] = ch
}

// counters counts the API's template work (for tests) and its refused calls.
type counters struct {
	renders  atomic.Int64 // rules rendered against the sample run
	compiles atomic.Int64 // rules compiled to check them
	rejected rejections   // refused calls, for rate-limiting their log lines
}

// renderRule renders a compiled rule: the one place the API renders.
func (a *API) renderRule(rule *alerts.Rule, c *alerts.Context) (string, []byte, error) {
	a.count.renders.Add(1)
	return rule.Render(c)
}

// storedProblems returns what is wrong with a stored rule whose secret
// fields opened (spec), by field, without rendering it: the result of the
// full check when this version was saved through the API, else of
// compiling it (once per version) for versions written around the API.
func (a *API) storedProblems(c supabase.AlertConfig, spec alerts.RuleSpec) fieldErrors {
	v := versionOf(c)
	if problems, ok := a.checks.get(v); ok {
		return problems
	}
	fe := fieldErrors{}
	a.count.compiles.Add(1)
	if _, err := alerts.CompileRule(spec); err != nil {
		addCompileErrors(fe, err)
	} else if !a.opts.AllowInsecureHTTP && isPlainHTTP(spec.WebhookURL) {
		fe.add("webhook_url", "plain http:// URLs are refused (sender.allow_insecure_http is off); use https://")
	}
	a.checks.put(v, fe)
	return fe
}

// noteSaved records that a rule version just passed the full check of a
// save (compiled and rendered against the sample run).
func (a *API) noteSaved(c supabase.AlertConfig) {
	a.checks.put(versionOf(c), fieldErrors{})
}

// isPlainHTTP reports whether a URL template's fixed start makes it an
// http:// URL whatever it renders to.
func isPlainHTTP(tmpl string) bool {
	s := strings.TrimSpace(tmpl)
	if i := strings.Index(s, "{{"); i >= 0 {
		s = s[:i]
	}
	if !strings.Contains(s, "://") {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && strings.EqualFold(u.Scheme, "http")
}
