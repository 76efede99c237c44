package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// ReceiverFaults are the probabilities (0..1) with which the receiver
// misbehaves on a request for a webhook-id it has not acknowledged yet.
type ReceiverFaults struct {
	ServerError float64       // answer 500, 502 or 503
	TooMany     float64       // answer 429 with Retry-After: 1
	Slow        float64       // answer only after SlowBy (past the daemon's attempt timeout)
	SlowBy      time.Duration // how long a slow answer takes
}

// ack is the receiver's record of one acknowledged webhook-id.
type ack struct {
	key Key
	at  time.Time
}

// ReceiverStats are the receiver's counters.
type ReceiverStats struct {
	Requests      int // every request
	Acked         int // webhook-ids acknowledged (first 2xx; after dedupe)
	Dupes         int // requests for a webhook-id already acknowledged
	ServerErrors  int // 5xx answered
	TooMany       int // 429 answered
	Slow          int // slow answers (the daemon gave up waiting)
	BadSignatures int // requests the official verifier refused
	BadPayloads   int // requests whose body did not name rule, run and event
}

// Receiver is a webhook endpoint that verifies every request with the
// official Standard Webhooks library, deduplicates on webhook-id and answers
// with scripted faults drawn from a seeded RNG. Safe for concurrent use.
type Receiver struct {
	URL string

	wh      *standardwebhooks.Webhook
	srv     *http.Server
	closing chan struct{}

	mu       sync.Mutex // guards the fields below
	rng      *rand.Rand
	faults   ReceiverFaults
	acked    map[string]ack // webhook-id → first acknowledgement
	stats    ReceiverStats
	problems []string
	last     time.Time // last request
}

// NewReceiver starts a receiver on 127.0.0.1 verifying with secret.
func NewReceiver(secret string, seed uint64) (*Receiver, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("chaos: receiver secret: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("chaos: receiver listen: %w", err)
	}
	r := &Receiver{
		URL: "http://" + ln.Addr().String(), wh: wh, closing: make(chan struct{}),
		rng: rand.New(rand.NewPCG(seed, 0x5eed)), acked: map[string]ack{},
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// SetFaults changes the fault probabilities; the zero value answers every
// request with 204.
func (r *Receiver) SetFaults(f ReceiverFaults) {
	r.mu.Lock()
	r.faults = f
	r.mu.Unlock()
}

type answer int

const (
	answerAck answer = iota
	answerDupe
	answer5xx
	answer429
	answerSlow
)

// alertPayload is the part of the default payload the receiver reads.
type alertPayload struct {
	Event string `json:"event"`
	Run   struct {
		ID string `json:"id"`
	} `json:"run"`
	Rule struct {
		ID string `json:"id"`
	} `json:"rule"`
}

// ServeHTTP handles one delivery.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	id := req.Header.Get("webhook-id")
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.problem(&r.stats.BadSignatures, "webhook-id %q: signature refused: %v", id, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p alertPayload
	if err := json.Unmarshal(body, &p); err != nil || p.Event == "" || p.Run.ID == "" || p.Rule.ID == "" {
		r.problem(&r.stats.BadPayloads, "webhook-id %q: payload does not name rule, run and event", id)
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	key := Key{Rule: p.Rule.ID, Run: p.Run.ID, Event: p.Event}

	r.mu.Lock()
	r.stats.Requests++
	r.last = time.Now()
	a := answerAck
	var slowBy time.Duration
	if _, done := r.acked[id]; done {
		a = answerDupe
		r.stats.Dupes++
	} else {
		f := r.faults
		switch x := r.rng.Float64(); {
		case x < f.ServerError:
			a = answer5xx
			r.stats.ServerErrors++
		case x < f.ServerError+f.TooMany:
			a = answer429
			r.stats.TooMany++
		case x < f.ServerError+f.TooMany+f.Slow:
			a, slowBy = answerSlow, f.SlowBy
		}
	}
	code := []int{500, 502, 503}[r.rng.IntN(3)]
	r.mu.Unlock()

	switch a {
	case answerDupe:
		w.WriteHeader(http.StatusNoContent) // already processed: acknowledge, do nothing
	case answer5xx:
		http.Error(w, "chaos: server error", code)
	case answer429:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "chaos: slow down", http.StatusTooManyRequests)
	case answerSlow:
		select {
		case <-req.Context().Done():
			r.mu.Lock()
			r.stats.Slow++
			r.mu.Unlock()
			return // the daemon gave up: nothing was acknowledged
		case <-r.closing:
			return
		case <-time.After(slowBy):
		}
		r.acknowledge(w, id, key) // the daemon waited after all
	default:
		r.acknowledge(w, id, key)
	}
}

// acknowledge records id as processed (once) and answers 204.
func (r *Receiver) acknowledge(w http.ResponseWriter, id string, key Key) {
	r.mu.Lock()
	if _, done := r.acked[id]; done {
		r.stats.Dupes++
	} else {
		r.acked[id] = ack{key: key, at: time.Now()}
		r.stats.Acked++
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *Receiver) problem(counter *int, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*counter++
	r.stats.Requests++
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// Stats returns the counters.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Problems returns up to 20 descriptions of refused requests.
func (r *Receiver) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

// LastRequest returns when the last request arrived (zero if none).
func (r *Receiver) LastRequest() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Acked returns every acknowledged webhook-id with the alert it carried.
func (r *Receiver) Acked() map[string]Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Key, len(r.acked))
	for id, a := range r.acked {
		out[id] = a.key
	}
	return out
}

// Close stops the receiver.
func (r *Receiver) Close() error {
	close(r.closing)
	return r.srv.Close()
}
