package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

func TestEveryCommandHasHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"run", "--help"}, {"check-config", "--help"}, {"seal", "--help"},
		{"verify", "--help"}, {"send-test", "--help"}, {"version", "--help"}, {"-h"}, {"send-test", "-h"},
	} {
		var out, errOut bytes.Buffer
		require.Equal(t, exitOK, cli(context.Background(), args, nil, &out, &errOut), "%v", args)
		assert.Contains(t, errOut.String(), "Usage: meshhook-alerts", "%v", args)
	}
	var out, errOut bytes.Buffer
	assert.Equal(t, exitUsage, cli(context.Background(), []string{"version", "extra"}, nil, &out, &errOut))
	assert.Contains(t, errOut.String(), "unexpected arguments")
}

// sendTestEnv lets send-test reach a receiver on 127.0.0.1.
var sendTestEnv = []string{"MESHHOOK_ALERTS_SENDER_ALLOW_INSECURE_HTTP=true", "MESHHOOK_ALERTS_SENDER_ALLOWED_NETWORKS=127.0.0.0/8"}

func TestSendTest(t *testing.T) {
	rcv, err := sendertest.NewReceiver(testSecret)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rcv.Close() })
	send := func(env []string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := cli(context.Background(), append([]string{"send-test"}, args...), env, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, errOut := send(sendTestEnv, "--url", rcv.URL+"/hook", "--secret", testSecret, "--event", "stalled")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "status:     204")
	assert.Contains(t, out, "outcome:    ok (success)")
	assert.Contains(t, out, "latency:")
	got := rcv.Deliveries()
	require.Len(t, got, 1)
	require.NoError(t, got[0].VerifyErr, "the test alert is signed like every alert")
	assert.Contains(t, out, got[0].ID)
	var body map[string]any
	require.NoError(t, json.Unmarshal(got[0].Body, &body))
	assert.Equal(t, "workflow_run.stalled", body["type"])

	// A non-2xx answer exits 1; the secret may come from the environment.
	rcv.Script(503)
	code, out, _ = send(append(sendTestEnv, envWebhookSecret+"="+testSecret), "--url", rcv.URL)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, out, "status:     503")

	// The SSRF guard applies: without the allowlist 127.0.0.1 is refused.
	code, out, _ = send([]string{"MESHHOOK_ALERTS_SENDER_ALLOW_INSECURE_HTTP=true"}, "--url", rcv.URL, "--secret", testSecret)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, out, "status:     no response")
	assert.Len(t, rcv.Deliveries(), 2, "the refused send never reached the receiver")

	for name, args := range map[string][]string{
		"no url":     {"--secret", testSecret},
		"no secret":  {"--url", rcv.URL},
		"bad secret": {"--url", rcv.URL, "--secret", "nope"},
		"bad event":  {"--url", rcv.URL, "--secret", testSecret, "--event", "exploded"},
		"extra":      {"--url", rcv.URL, "--secret", testSecret, "more"},
	} {
		code, _, errOut := send(sendTestEnv, args...)
		assert.Equal(t, exitUsage, code, name)
		assert.Contains(t, errOut, "meshhook-alerts send-test:", name)
	}
}

// `help` lists the commands and `help COMMAND` prints that command's help,
// both on stdout, as asked for.
func TestHelpCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, cli(context.Background(), []string{"help"}, nil, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "Usage: meshhook-alerts [--config FILE] [COMMAND]")
	assert.Contains(t, out.String(), "help          print this help")
	assert.Empty(t, errOut.String())
	for _, cmd := range commands {
		out.Reset()
		errOut.Reset()
		require.Equal(t, exitOK, cli(context.Background(), []string{"help", cmd}, nil, &out, &errOut), "%s: %s", cmd, errOut.String())
		assert.Contains(t, out.String(), "Usage: meshhook-alerts", cmd)
		assert.Contains(t, out.String(), cmd, cmd)
		assert.Empty(t, errOut.String(), cmd)
	}
	out.Reset()
	require.Equal(t, exitOK, cli(context.Background(), []string{"help", "seal"}, nil, &out, &errOut))
	assert.Contains(t, out.String(), "-value", "the command's own flags are listed")

	for _, args := range [][]string{{"help", "frobnicate"}, {"help", "seal", "verify"}} {
		errOut.Reset()
		assert.Equal(t, exitUsage, cli(context.Background(), args, nil, &out, &errOut), "%v", args)
		assert.NotEmpty(t, errOut.String(), "%v", args)
	}
	assert.Contains(t, errOut.String(), "one command at a time")
}

// check-config reports every problem at once: a duration that does not
// decode hides neither another one nor what validation finds.
func TestCheckConfigReportsEveryProblem(t *testing.T) {
	var out, errOut bytes.Buffer
	env := []string{"MESHHOOK_ALERTS_SENDER_REQUEST_TIMEOUT=5x", "MESHHOOK_ALERTS_SENDER_CONNECT_TIMEOUT=soon",
		"MESHHOOK_ALERTS_SENDER_WORKERS=0"}
	require.Equal(t, exitUsage, cli(context.Background(), []string{"check-config"}, env, &out, &errOut))
	for _, want := range []string{"sender.request_timeout: invalid duration", "sender.connect_timeout: invalid duration",
		"supabase.url: required", "sender.workers: must be between 1 and 1024"} {
		assert.Contains(t, errOut.String(), want)
	}
}
