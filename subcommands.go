package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/meshhook/meshhook-alerts/config"
	"github.com/meshhook/meshhook-alerts/daemon"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/sender"
)

// envWebhookSecret supplies verify's secret when --secret is not given
// (command lines are visible to other users of the machine).
const envWebhookSecret = "MESHHOOK_WEBHOOK_SECRET"

// maxInput caps what seal and verify read.
const maxInput = 16 << 20

// readInput reads path ("" or "-": stdin), at most maxInput bytes.
func readInput(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "" && path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxInput {
		return nil, fmt.Errorf("input is larger than %d bytes", maxInput)
	}
	return b, nil
}

func getenv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// runSeal implements `meshhook-alerts seal`: it encrypts one value with
// secrets.encryption_key and prints the envelope to store in alert_configs.
func runSeal(configPath string, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meshhook-alerts seal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	value := fs.String("value", "", "the value to seal (default: read from --in or stdin; one trailing newline is dropped)")
	in := fs.String("in", "", "read the value from this file instead of stdin")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: meshhook-alerts [--config FILE] seal [--value V | --in FILE] < value

Seals a webhook URL, a whsec_ signing secret, a custom header value or a PEM
key with secrets.encryption_key (MESHHOOK_ALERTS_SECRETS_ENCRYPTION_KEY) and
prints the "mhsealed:v1:..." envelope to store in alert_configs.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshhook-alerts seal: unexpected arguments %v\n", fs.Args())
		return exitUsage
	}
	cfg, err := config.Load(configPath, environ)
	if err != nil {
		fmt.Fprintf(stderr, "meshhook-alerts seal: %v\n", err)
		return exitUsage
	}
	keys, err := daemon.Keyring(cfg.Secrets)
	if err != nil {
		fmt.Fprintf(stderr, "meshhook-alerts seal: %v\n", err)
		return exitUsage
	}
	if !keys.CanSeal() {
		fmt.Fprintf(stderr, "meshhook-alerts seal: secrets.encryption_key is not set (%s); generate one with `openssl rand -base64 32`\n",
			config.EnvName("secrets.encryption_key"))
		return exitUsage
	}
	plain := *value
	if plain == "" {
		b, err := readInput(*in)
		if err != nil {
			fmt.Fprintf(stderr, "meshhook-alerts seal: read value: %v\n", err)
			return exitFailed
		}
		plain = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	if plain == "" {
		fmt.Fprintln(stderr, "meshhook-alerts seal: the value is empty")
		return exitUsage
	}
	if seal.IsSealed(plain) {
		fmt.Fprintln(stderr, "meshhook-alerts seal: the value is already sealed")
		return exitUsage
	}
	out, err := keys.Seal(plain)
	if err != nil {
		fmt.Fprintf(stderr, "meshhook-alerts seal: %v\n", err)
		return exitFailed
	}
	fmt.Fprintln(stdout, out)
	return exitOK
}

// runVerify implements `meshhook-alerts verify`: it checks a received
// webhook's Standard Webhooks signature. Exit status 0 means valid, 1
// invalid, 2 a usage error.
func runVerify(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meshhook-alerts verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", "", "the endpoint's signing secret, whsec_… (default: $"+envWebhookSecret+")")
	tolerance := fs.Duration("tolerance", sender.DefaultTolerance, "accepted clock difference for webhook-timestamp")
	id := fs.String("id", "", "webhook-id header (with --timestamp and --signature the input is the raw body)")
	ts := fs.String("timestamp", "", "webhook-timestamp header")
	sig := fs.String("signature", "", "webhook-signature header")
	in := fs.String("in", "", "read the request (or body) from this file instead of stdin")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: meshhook-alerts verify --secret whsec_... [--tolerance 5m] < request
       meshhook-alerts verify --secret whsec_... --id ID --timestamp TS --signature SIG < body

Verifies a received webhook. The input is either the raw HTTP request as it
arrived (request line, headers, blank line, body — e.g. captured with
"nc -l 8080 > request.txt"), or, with --id, --timestamp and --signature, the
raw body only. Exit status: 0 valid, 1 invalid, 2 usage error.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshhook-alerts verify: unexpected arguments %v\n", fs.Args())
		return exitUsage
	}
	if *secret == "" {
		*secret = getenv(environ, envWebhookSecret)
	}
	if *secret == "" {
		fmt.Fprintf(stderr, "meshhook-alerts verify: --secret (or $%s) is required\n", envWebhookSecret)
		return exitUsage
	}
	if _, err := sender.ParseSecret(*secret); err != nil {
		fmt.Fprintf(stderr, "meshhook-alerts verify: --secret: %v\n", err)
		return exitUsage
	}
	headersGiven := *id != "" || *ts != "" || *sig != ""
	if headersGiven && (*id == "" || *ts == "" || *sig == "") {
		fmt.Fprintln(stderr, "meshhook-alerts verify: --id, --timestamp and --signature go together")
		return exitUsage
	}
	raw, err := readInput(*in)
	if err != nil {
		fmt.Fprintf(stderr, "meshhook-alerts verify: read input: %v\n", err)
		return exitUsage
	}
	var header http.Header
	var body []byte
	if headersGiven {
		header = http.Header{}
		header.Set(sender.HeaderID, *id)
		header.Set(sender.HeaderTimestamp, *ts)
		header.Set(sender.HeaderSignature, *sig)
		body = raw
	} else {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			fmt.Fprintf(stderr, "meshhook-alerts verify: the input is not an HTTP request (%v); pass --id, --timestamp and --signature to verify a bare body\n", err)
			return exitUsage
		}
		body, err = io.ReadAll(req.Body)
		if err != nil {
			fmt.Fprintf(stderr, "meshhook-alerts verify: read request body: %v\n", err)
			return exitUsage
		}
		header = req.Header
	}
	if err := sender.Verify(*secret, header, body, *tolerance, time.Now()); err != nil {
		fmt.Fprintf(stderr, "INVALID: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "OK: webhook-id %s, signed at %s\n", header.Get(sender.HeaderID), header.Get(sender.HeaderTimestamp))
	return exitOK
}
