// Command meshhook-alerts watches a Supabase workflow-runs table over
// Realtime, matches each run against the alert rules in alert_configs and
// delivers signed webhooks, recording every attempt in alert_logs.
//
// This package is the command line only; the daemon package wires and runs
// the components. See README.md and docs/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/meshhook/meshhook-alerts/config"
	"github.com/meshhook/meshhook-alerts/daemon"
	"github.com/meshhook/meshhook-alerts/internal/logging"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the daemon stopped on an error
	exitUsage  = 2 // bad command line or configuration
)

func main() {
	os.Exit(cli(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// cli parses the command line and runs the chosen subcommand.
func cli(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	// A closed output must not kill the process: `meshhook-alerts help |
	// head -1` ends with status 0, and a daemon whose log pipe went away
	// keeps alerting (and drains on SIGTERM) instead of dying mid-attempt.
	// With SIGPIPE ignored, such writes fail and are dropped.
	signal.Ignore(syscall.SIGPIPE)
	fs := flag.NewFlagSet("meshhook-alerts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path of the YAML config file (default: $MESHHOOK_ALERTS_CONFIG, ./config.yaml, /etc/meshhook-alerts/config.yaml)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	cmd := "run"
	var rest []string
	if fs.NArg() > 0 {
		cmd, rest = fs.Arg(0), fs.Args()[1:]
	}
	switch cmd {
	case "seal":
		return runSeal(*configPath, rest, environ, stdout, stderr)
	case "verify":
		return runVerify(rest, environ, stdout, stderr)
	case "send-test":
		return runSendTest(ctx, *configPath, rest, environ, stdout, stderr)
	case "help":
		return runHelp(ctx, *configPath, rest, stdout, stderr)
	case "version", "run", "check-config":
		if code, ok := parseBare(cmd, rest, stderr); !ok {
			return code
		}
	default:
		fmt.Fprintf(stderr, "meshhook-alerts: unknown command %q\n", cmd)
		fs.Usage()
		return exitUsage
	}
	if cmd == "version" {
		fmt.Fprintln(stdout, "meshhook-alerts", config.Version())
		return exitOK
	}

	cfg, err := config.LoadAndValidate(*configPath, environ)
	var warnings []string
	if err == nil {
		warnings, err = cfg.CheckFiles(time.Now())
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshhook-alerts: invalid configuration:\n%v\n", err)
		return exitUsage
	}
	if cmd == "check-config" {
		for _, w := range warnings {
			fmt.Fprintf(stderr, "meshhook-alerts: warning: %s\n", w)
		}
		fmt.Fprintf(stdout, "configuration OK (file: %s)\n", orNone(cfg.File))
		fmt.Fprintf(stdout, "supabase key: %s\n", cfg.Supabase.KeyKind())
		return exitOK
	}

	log, err := logging.NewWithOutput(logging.Config{Level: cfg.Log.Level, Format: cfg.Log.Format,
		Development: cfg.Log.Development}, zapcore.AddSync(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "meshhook-alerts: %v\n", err)
		return exitUsage
	}
	defer func() { _ = log.Sync() }()

	if err := daemon.Run(ctx, cfg, log); err != nil {
		log.Error("stopped", zap.Error(err))
		return exitFailed
	}
	return exitOK
}

func orNone(s string) string {
	if s == "" {
		return "none, defaults and environment only"
	}
	return s
}
