// Package sendertest provides a webhook receiver for tests and the demo: it
// records every delivery, verifies its Standard Webhooks signature with the
// official Go verifier and answers with scripted statuses.
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
	// Status is what the receiver answered.
	Status int
}

// Receiver is an HTTP server on 127.0.0.1 that records deliveries. It is
// safe for concurrent use. Close it when done.
type Receiver struct {
	URL string

	wh     *standardwebhooks.Webhook
	srv    *http.Server
	ln     net.Listener
	mu     sync.Mutex // guards the fields below
	got    []Delivery
	script []int
	notify chan struct{}
	onRecv func(Delivery)
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
	r := &Receiver{URL: "http://" + ln.Addr().String(), wh: wh, ln: ln, notify: make(chan struct{})}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Script sets the statuses of the next responses, in order; after them the
// receiver answers 204.
func (r *Receiver) Script(statuses ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script = append(r.script[:0], statuses...)
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
		ReceivedAt: time.Now(), VerifyErr: r.wh.Verify(body, req.Header), Status: http.StatusNoContent,
	}
	r.mu.Lock()
	if len(r.script) > 0 {
		d.Status, r.script = r.script[0], r.script[1:]
	}
	r.got = append(r.got, d)
	close(r.notify)
	r.notify = make(chan struct{})
	cb := r.onRecv
	r.mu.Unlock()
	if cb != nil {
		cb(d)
	}
	w.WriteHeader(d.Status)
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

// Close stops the server.
func (r *Receiver) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}
