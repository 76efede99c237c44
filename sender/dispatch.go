package sender

import (
	"net/url"
	"strings"
	"sync"
	"time"
)

// job is one leased alert held in memory until its outcome is durable.
type job struct {
	a        Alert
	host     string    // destination host key ("" when the URL is unusable)
	endpoint string    // circuit breaker key (see circuitKey)
	queued   time.Time // when it entered its host's queue
	probe    bool      // the half-open probe of its endpoint's circuit
	started  bool
}

// newJob wraps a leased alert with its isolation keys.
func newJob(a Alert) *job {
	host, endpoint := targetKeys(a.TargetURL)
	return &job{a: a, host: host, endpoint: circuitKey(a, endpoint)}
}

// circuitKey is the circuit breaker key of an alert to endpoint. Every
// PagerDuty rule posts to the same URL (the routing key is in the body),
// so its health is judged per rule: one tenant's events rate-limited or
// refused under its own key must not cut off every tenant's pages. Other
// destinations have a URL of their own (a Slack or Discord hook's path, a
// Teams workflow's, a Google Chat space's) and are judged per endpoint.
func circuitKey(a Alert, endpoint string) string {
	if a.Vendor == VendorPagerDuty && endpoint != "" {
		return endpoint + "#rule=" + a.ConfigID
	}
	return endpoint
}

// targetKeys returns a target's host key (scheme, host and port: what the
// per-host concurrency limit counts, since the host's capacity is shared)
// and its endpoint key (the host key and the path: what a circuit breaker
// judges, since one broken webhook says nothing about another on the same
// host, as every Slack incoming webhook shares hooks.slack.com). The query
// is left out of both: it often carries a token, and the keys appear in
// memory dumps and, hashed, in logs. A default port is dropped, so that
// https://h and https://h:443 are one destination. Both are "" when the
// URL is unusable.
func targetKeys(raw string) (host, endpoint string) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", ""
	}
	scheme, h := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if port := u.Port(); (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		h = strings.TrimSuffix(h, ":"+port)
	}
	host = scheme + "://" + h
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return host, host + path
}

// hostQueue is one destination's waiting jobs and running count. Its jobs
// wait in one queue per rule, served round-robin: many tenants share a
// vendor's host (hooks.slack.com, discord.com, events.pagerduty.com), and
// one rule's burst must not make every other rule's alert wait behind it.
// Within a rule, jobs start in the order they came.
type hostQueue struct {
	key     string
	rules   []*ruleQueue // rules with waiting jobs, in round-robin order
	byRule  map[string]*ruleQueue
	next    int // round-robin cursor into rules
	waiting int // jobs waiting, over every rule
	active  int
	inRing  bool
}

// ruleQueue is one rule's waiting jobs on a host.
type ruleQueue struct {
	rule string
	jobs []*job
}

func (h *hostQueue) push(j *job) {
	q := h.byRule[j.a.ConfigID]
	if q == nil {
		if h.byRule == nil {
			h.byRule = map[string]*ruleQueue{}
		}
		q = &ruleQueue{rule: j.a.ConfigID}
		h.byRule[q.rule] = q
		h.rules = append(h.rules, q)
	}
	q.jobs = append(q.jobs, j)
	h.waiting++
}

// pop removes the next job to start: the oldest of the next rule's.
func (h *hostQueue) pop() *job {
	if h.next >= len(h.rules) {
		h.next = 0
	}
	q := h.rules[h.next]
	j := q.jobs[0]
	q.jobs[0] = nil
	q.jobs = q.jobs[1:]
	h.waiting--
	if len(q.jobs) == 0 {
		h.rules = append(h.rules[:h.next], h.rules[h.next+1:]...)
		delete(h.byRule, q.rule)
	} else {
		h.next++
	}
	return j
}

// remove takes out and returns the waiting jobs that match.
func (h *hostQueue) remove(match func(*job) bool, out []*job) []*job {
	rules := h.rules[:0]
	for i, q := range h.rules {
		kept := q.jobs[:0]
		for _, j := range q.jobs {
			if match(j) {
				out = append(out, j)
				h.waiting--
			} else {
				kept = append(kept, j)
			}
		}
		clear(q.jobs[len(kept):])
		q.jobs = kept
		if len(kept) > 0 {
			rules = append(rules, q)
		} else {
			delete(h.byRule, q.rule)
			if i < h.next {
				h.next--
			}
		}
	}
	clear(h.rules[len(rules):])
	h.rules = rules
	return out
}

// dispatcher runs jobs with at most workers running overall and at most
// perHost per destination, serving hosts round-robin, so a slow or
// blackholed host can hold only its own perHost workers, and the rules
// waiting for a host round-robin too (see hostQueue).
type dispatcher struct {
	workers, perHost int
	run              func(*job) // starts a job (in a new goroutine)

	mu     sync.Mutex
	active int
	hosts  map[string]*hostQueue
	ring   []*hostQueue // hosts with waiting jobs and a free per-host slot
	next   int          // round-robin cursor into ring
}

func newDispatcher(workers, perHost int, run func(*job)) *dispatcher {
	return &dispatcher{workers: workers, perHost: perHost, run: run, hosts: map[string]*hostQueue{}}
}

// add queues a job and starts whatever can start.
func (d *dispatcher) add(j *job, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hosts[j.host]
	if h == nil {
		h = &hostQueue{key: j.host}
		d.hosts[j.host] = h
	}
	j.queued = now
	h.push(j)
	d.enterRing(h)
	d.pump()
}

// done frees a finished job's slots and starts whatever can start.
func (d *dispatcher) done(j *job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active--
	h := d.hosts[j.host]
	h.active--
	if h.active == 0 && h.waiting == 0 {
		delete(d.hosts, j.host)
	} else {
		d.enterRing(h)
	}
	d.pump()
}

func (d *dispatcher) enterRing(h *hostQueue) {
	if !h.inRing && h.waiting > 0 && h.active < d.perHost {
		h.inRing = true
		d.ring = append(d.ring, h)
	}
}

// pump starts jobs while there are free workers, one host at a time.
func (d *dispatcher) pump() {
	for d.active < d.workers && len(d.ring) > 0 {
		if d.next >= len(d.ring) {
			d.next = 0
		}
		h := d.ring[d.next]
		j := h.pop()
		h.active++
		d.active++
		j.started = true
		if h.waiting == 0 || h.active >= d.perHost {
			h.inRing = false
			d.ring = append(d.ring[:d.next], d.ring[d.next+1:]...)
		} else {
			d.next++
		}
		d.run(j)
	}
}

// take removes and returns the waiting jobs of host that match keep, or all
// of them when host is "*" (e.g. when its circuit opens or on shutdown).
func (d *dispatcher) take(host string, match func(*job) bool) []*job {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*job
	for key, h := range d.hosts {
		if host != "*" && key != host {
			continue
		}
		out = h.remove(match, out)
		if h.waiting == 0 {
			d.leaveRing(h)
			if h.active == 0 {
				delete(d.hosts, key)
			}
		}
	}
	return out
}

func (d *dispatcher) leaveRing(h *hostQueue) {
	if !h.inRing {
		return
	}
	for i, r := range d.ring {
		if r == h {
			d.ring = append(d.ring[:i], d.ring[i+1:]...)
			if d.next > i {
				d.next--
			}
			break
		}
	}
	h.inRing = false
}

// counts returns the running and waiting jobs.
func (d *dispatcher) counts() (active, waiting int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range d.hosts {
		waiting += h.waiting
	}
	return d.active, waiting
}
