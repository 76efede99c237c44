package sender

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/conformance"
)

// TestConformanceStandardWebhooksJS checks deliveries from this sender with
// the official JavaScript verifier (npm "standardwebhooks"), run by
// scripts/conformance/standardwebhooks.mjs: every attempt, including a
// retry, verifies with each of two active secrets. It needs Node.js and the
// conformance node_modules (scripts/test.sh installs them); without them the
// test fails rather than skips.
func TestConformanceStandardWebhooksJS(t *testing.T) {
	node, confDir := conformance.Node(t, "standardwebhooks")

	rcv := newReceiver(t)
	rcv.Script(500) // the retry is re-signed with a fresh timestamp
	a := alert("js", rcv.URL+"/hook")
	a.Secrets = []string{secretA, secretB}
	a.Payload = []byte(`{"type":"workflow_run.failed","event":"failed","run":{"id":"r1","note":"ünïcode ✓"}}`)
	store := newMemStore(a)
	runSender(t, fastOptions(), store)
	got := waitDeliveries(t, rcv, 2)

	type delivery struct {
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	forged, err := GenerateSecret()
	require.NoError(t, err)
	in := struct {
		Secrets    []string   `json:"secrets"`
		Forged     string     `json:"forged_secret"`
		Deliveries []delivery `json:"deliveries"`
	}{Secrets: []string{secretA, secretB}, Forged: forged}
	for _, d := range got {
		h := map[string]string{}
		for k := range d.Header {
			h[strings.ToLower(k)] = d.Header.Get(k)
		}
		in.Deliveries = append(in.Deliveries, delivery{Headers: h, Body: string(d.Body)})
	}
	input, err := json.Marshal(in)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(confDir, "standardwebhooks.mjs"))
	cmd.Dir = confDir
	cmd.Stdin = bytes.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	out := strings.TrimSpace(stdout.String())
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "FAIL ") {
			t.Error(line)
		}
	}
	if runErr != nil || !strings.HasSuffix(out, ", 0 failed") {
		t.Fatalf("standardwebhooks.mjs failed: %v\nstdout:\n%s\nstderr:\n%s", runErr, out, stderr.String())
	}
	t.Log(out[strings.LastIndex(out, "\n")+1:])
}
