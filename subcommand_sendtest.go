package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/config"
	"github.com/meshhook/meshhook-alerts/daemon"
	"github.com/meshhook/meshhook-alerts/sender"
)

// runSendTest implements `meshhook-alerts send-test`: one signed test alert
// to a URL, made exactly like a delivery attempt (URL checks, SSRF guard,
// TLS settings, Standard Webhooks signature), with the outcome printed.
// Exit status 0 means the receiver answered 2xx, 1 it did not, 2 a usage or
// configuration error.
func runSendTest(ctx context.Context, configPath string, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meshhook-alerts send-test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "the webhook URL to send to (required)")
	secret := fs.String("secret", "", "the endpoint's signing secret, whsec_… (default: $"+envWebhookSecret+")")
	event := fs.String("event", string(alerts.EventFailed), "the event of the sample alert (succeeded, failed, canceled, paused, delayed, stalled, recovered)")
	payloadPath := fs.String("payload", "", "send this file's JSON instead of the sample alert body (\"-\": stdin)")
	timeout := fs.Duration("timeout", 0, "bound on the attempt (default: sender.request_timeout)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: meshhook-alerts [--config FILE] send-test --url URL [--secret whsec_...] [--event failed] [--payload FILE]

Sends one Standard-Webhooks-signed test alert with a sample payload, through
the same URL checks, SSRF guard (sender.allowed_networks,
sender.allow_insecure_http) and TLS settings as real deliveries, and prints
the status, latency and outcome. Exit status: 0 the receiver answered 2xx,
1 it did not, 2 usage or configuration error.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "meshhook-alerts send-test: "+format+"\n", a...)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return fail("unexpected arguments %v", fs.Args())
	}
	if *target == "" {
		return fail("--url is required")
	}
	if *secret == "" {
		*secret = getenv(environ, envWebhookSecret)
	}
	if *secret == "" {
		return fail("--secret (or $%s) is required", envWebhookSecret)
	}
	if _, err := sender.ParseSecret(*secret); err != nil {
		return fail("--secret: %v", err)
	}
	ev, err := alerts.ParseEvent(*event)
	if err != nil {
		return fail("--event: %v", err)
	}
	if *timeout < 0 {
		return fail("--timeout must not be negative")
	}
	cfg, err := config.Load(configPath, environ)
	if err != nil {
		return fail("%v", err)
	}
	body, err := testPayload(ev, *payloadPath)
	if err != nil {
		return fail("%v", err)
	}
	opts := daemon.SenderOptions(cfg.Sender)
	if *timeout > 0 {
		opts.RequestTimeout = *timeout
	}
	snd, err := sender.New(opts, noStore{}, zap.NewNop())
	if err != nil {
		return fail("%v", err)
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := "msg_" + hex.EncodeToString(raw[:])
	res := snd.SendOnce(ctx, sender.Alert{
		ID: "send-test", WebhookID: id, Event: string(ev), Payload: body, TargetURL: *target,
		Secrets: []string{*secret}, CreatedAt: time.Now(),
	})
	fmt.Fprintf(stdout, "webhook-id: %s\n", id)
	if res.StatusCode != 0 {
		fmt.Fprintf(stdout, "status:     %d\n", res.StatusCode)
	} else {
		fmt.Fprintln(stdout, "status:     no response")
	}
	fmt.Fprintf(stdout, "latency:    %s\n", res.Latency.Round(time.Microsecond))
	fmt.Fprintf(stdout, "outcome:    %s (%s)\n", res.Outcome.Reason, res.Outcome.Kind)
	if res.Error != "" {
		fmt.Fprintf(stdout, "error:      %s\n", res.Error)
	}
	if res.ResponseExcerpt != "" {
		fmt.Fprintf(stdout, "response:   %s\n", res.ResponseExcerpt)
	}
	if res.Outcome.Kind != sender.Success {
		return exitFailed
	}
	return exitOK
}

// testPayload is the body of a test alert: the sample alert for ev, or the
// JSON read from path.
func testPayload(ev alerts.Event, path string) ([]byte, error) {
	if path == "" {
		c := alerts.SampleContext()
		c.Event, c.Type = ev, "workflow_run."+string(ev)
		return alerts.RenderDefault(c)
	}
	b, err := readInput(path)
	if err != nil {
		return nil, fmt.Errorf("--payload: %w", err)
	}
	if !json.Valid(b) {
		return nil, errors.New("--payload: the file is not valid JSON")
	}
	return b, nil
}

// noStore is the sender store of one-shot sends: SendOnce never uses it.
type noStore struct{}

func (noStore) LeaseDue(context.Context, time.Time, time.Time, int) ([]sender.Alert, error) {
	return nil, nil
}
func (noStore) Report(context.Context, []sender.Report) (map[string]bool, error) { return nil, nil }
func (noStore) DisableConfig(context.Context, string, string) error              { return nil }
