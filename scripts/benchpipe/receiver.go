package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// verifyEvery is how often the receiver checks a signature: every
// delivery would make the receiver, not the daemon, the bottleneck.
const verifyEvery = 50

// delivery is the first receipt of one run's alert.
type delivery struct {
	occurredAt, receivedAt time.Time
}

// receiver is a fast webhook endpoint that records, per run, when its first
// alert arrived and the commit time it carries.
type receiver struct {
	url string
	srv *http.Server
	wh  *standardwebhooks.Webhook

	mu     sync.Mutex
	runs   map[string]delivery
	want   map[string]bool // the runs waitRuns waits for
	have   int             // how many of want arrived
	notify chan struct{}
	n      atomic.Int64
	bad    atomic.Int64
}

func newReceiver(addr, secret string) (*receiver, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/hook", wh: wh, runs: map[string]delivery{}, notify: make(chan struct{}, 1)}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if r.n.Add(1)%verifyEvery == 1 {
		if err := r.wh.Verify(body, req.Header); err != nil {
			r.bad.Add(1)
		}
	}
	var p struct {
		OccurredAt time.Time `json:"occurred_at"`
		Run        struct {
			ID string `json:"id"`
		} `json:"run"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Run.ID == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	if _, dup := r.runs[p.Run.ID]; !dup {
		r.runs[p.Run.ID] = delivery{occurredAt: p.OccurredAt, receivedAt: at}
		if r.want[p.Run.ID] {
			r.have++
		}
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

// waitRuns waits until an alert for every run in want arrived and returns
// their deliveries by run id.
func (r *receiver) waitRuns(ctx context.Context, want map[string]bool, timeout time.Duration) (map[string]delivery, error) {
	r.mu.Lock()
	r.want, r.have = want, 0
	for id := range want {
		if _, ok := r.runs[id]; ok {
			r.have++
		}
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.want = nil
		r.mu.Unlock()
	}()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		have := r.have
		if have == len(want) {
			out := make(map[string]delivery, len(want))
			for id := range want {
				out[id] = r.runs[id]
			}
			r.mu.Unlock()
			return out, nil
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, fmt.Errorf("only %d of %d alerts arrived within %s", have, len(want), timeout)
		case <-r.notify:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *receiver) badSignatures() int64 { return r.bad.Load() }

func (r *receiver) Close() { _ = r.srv.Close() }

// blackhole accepts connections and never answers on them.
type blackhole struct {
	url   string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	n     atomic.Int64
}

func newBlackhole(addr string) (*blackhole, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("blackhole on %s (Linux answers all of 127.0.0.0/8): %w", addr, err)
	}
	b := &blackhole{url: "http://" + ln.Addr().String() + "/hook", ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			b.n.Add(1)
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }() // read, never write
		}
	}()
	return b, nil
}

func (b *blackhole) accepted() int64 { return b.n.Load() }

func (b *blackhole) Close() {
	_ = b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		_ = c.Close()
	}
}
