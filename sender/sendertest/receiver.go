// Package sendertest provides a webhook receiver for tests and the demo: it
// records every delivery, verifies its Standard Webhooks signature with the
// official Go verifier and answers as scripted: a status (with headers such
// as Retry-After), slowly, never, or by resetting the connection.
package sendertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Delivery is one request the receiver got.
type Delivery struct {
	Path       string // request path
	ID         string // webhook-id
	Timestamp  string // webhook-timestamp
	Signature  string // webhook-signature
	Header     http.Header
	Body       []byte
	ReceivedAt time.Time
	// VerifyErr is the official verifier's verdict (nil: the signature is valid).
	VerifyErr error
	// Status is what the receiver answered (0 when it hung or reset).
	Status int
}

// Step is one scripted answer.
type Step struct {
	Status int         // status to answer (default 204)
	Header http.Header // extra response headers, e.g. Retry-After
	Body   string      // response body
	Delay  time.Duration
	// Hang never answers: the request is held until the client gives up or
	// the receiver is closed.
	Hang bool
	// Reset closes the connection with a TCP reset instead of answering.
	Reset bool
}

// Status is a step answering code.
func Status(code int) Step { return Step{Status: code} }

// Receiver is an HTTP server on 127.0.0.1 that records deliveries. It is
// safe for concurrent use. Close it when done.
type Receiver struct {
	URL string

	wh      *standardwebhooks.Webhook
	srv     *http.Server
	ln      net.Listener
	closing chan struct{} // closed by Close: hanging requests end
	mu      sync.Mutex    // guards the fields below
	got     []Delivery
	script  []Step
	notify  chan struct{}
	onRecv  func(Delivery)
	active  int
}

// NewReceiver starts a receiver verifying with secret ("whsec_…").
func NewReceiver(secret string) (*Receiver, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("sendertest: secret: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Receiver{URL: "http://" + ln.Addr().String(), wh: wh, ln: ln, notify: make(chan struct{}), closing: make(chan struct{})}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Script sets the statuses of the next responses, in order; after them the
// receiver answers 204.
func (r *Receiver) Script(statuses ...int) {
	steps := make([]Step, len(statuses))
	for i, c := range statuses {
		steps[i] = Status(c)
	}
	r.ScriptSteps(steps...)
}

// ScriptSteps sets the next answers, in order; after them the receiver
// answers 204.
func (r *Receiver) ScriptSteps(steps ...Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = append(r.script[:0], steps...)
}

// InFlight is the number of requests being answered right now.
func (r *Receiver) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active
}

// OnDelivery registers a callback run for every delivery (after it is recorded).
func (r *Receiver) OnDelivery(f func(Delivery)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onRecv = f
}

// ServeHTTP records and answers one delivery.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	d := Delivery{
		Path: req.URL.Path, ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
		Signature: req.Header.Get("webhook-signature"), Header: req.Header.Clone(), Body: body,
		ReceivedAt: time.Now(), VerifyErr: r.wh.Verify(body, req.Header),
	}
	step := Step{Status: http.StatusNoContent}
	r.mu.Lock()
	if len(r.script) > 0 {
		step, r.script = r.script[0], r.script[1:]
		if step.Status == 0 && !step.Hang && !step.Reset {
			step.Status = http.StatusNoContent
		}
	}
	if !step.Hang && !step.Reset {
		d.Status = step.Status
	}
	r.got = append(r.got, d)
	close(r.notify)
	r.notify = make(chan struct{})
	cb := r.onRecv
	r.active++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.active--
		r.mu.Unlock()
	}()
	if cb != nil {
		cb(d)
	}
	switch {
	case step.Hang:
		select {
		case <-req.Context().Done():
		case <-r.closing:
		}
		return
	case step.Reset:
		reset(w)
		return
	}
	if step.Delay > 0 {
		select {
		case <-time.After(step.Delay):
		case <-req.Context().Done():
			return
		case <-r.closing:
			return
		}
	}
	for k, vs := range step.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(step.Status)
	_, _ = io.WriteString(w, step.Body)
}

// reset closes the request's connection with a TCP RST.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// Deliveries returns everything received so far.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// Wait blocks until at least n deliveries arrived or ctx ends.
func (r *Receiver) Wait(ctx context.Context, n int) ([]Delivery, error) {
	for {
		r.mu.Lock()
		got, ch := append([]Delivery(nil), r.got...), r.notify
		r.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, fmt.Errorf("sendertest: got %d of %d deliveries: %w", len(got), n, ctx.Err())
		case <-ch:
		}
	}
}

// Close stops the server; requests held by Hang steps end.
func (r *Receiver) Close() error {
	r.mu.Lock()
	select {
	case <-r.closing:
	default:
		close(r.closing)
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}
