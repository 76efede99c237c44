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
	endpoint string    // circuit breaker key (see endpointKey)
	queued   time.Time // when it entered its host's queue
	probe    bool      // the half-open probe of its endpoint's circuit
	started  bool
}

// newJob wraps a leased alert with its isolation keys.
func newJob(a Alert) *job {
	host, endpoint := targetKeys(a.TargetURL)
	return &job{a: a, host: host, endpoint: endpoint}
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

// hostQueue is one destination's waiting jobs and running count.
type hostQueue struct {
	key     string
	waiting []*job
	active  int
	inRing  bool
}

// dispatcher runs jobs with at most workers running overall and at most
// perHost per destination, serving hosts round-robin, so a slow or
// blackholed host can hold only its own perHost workers.
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
	h.waiting = append(h.waiting, j)
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
	if h.active == 0 && len(h.waiting) == 0 {
		delete(d.hosts, j.host)
	} else {
		d.enterRing(h)
	}
	d.pump()
}

func (d *dispatcher) enterRing(h *hostQueue) {
	if !h.inRing && len(h.waiting) > 0 && h.active < d.perHost {
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
		j := h.waiting[0]
		h.waiting[0] = nil
		h.waiting = h.waiting[1:]
		h.active++
		d.active++
		j.started = true
		if len(h.waiting) == 0 || h.active >= d.perHost {
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
		kept := h.waiting[:0]
		for _, j := range h.waiting {
			if match(j) {
				out = append(out, j)
			} else {
				kept = append(kept, j)
			}
		}
		clear(h.waiting[len(kept):])
		h.waiting = kept
		if len(h.waiting) == 0 {
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
		waiting += len(h.waiting)
	}
	return d.active, waiting
}
