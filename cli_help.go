package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// usageText heads the top-level --help.
const usageText = `Usage: meshhook-alerts [--config FILE] [COMMAND] [--help]

Commands:
  run           run the daemon (the default)
  check-config  load and validate the configuration, then exit
  seal          encrypt a secret rule field with secrets.encryption_key
  verify        check a received webhook's Standard Webhooks signature
  send-test     send one signed test alert to a URL and print the outcome
  version       print the version
  help          print this help, or a command's: help COMMAND

Every command takes --help. Exit status: 0 success, 1 failure (the daemon
stopped on an error, a signature is invalid, a test send was not answered
2xx), 2 usage or configuration error.

`

// bareUsage is the --help text of the commands without flags of their own.
var bareUsage = map[string]string{
	"run": `Usage: meshhook-alerts [--config FILE] run

Runs the daemon: subscribes to workflow-run changes over Supabase Realtime,
matches them against alert_configs and delivers signed webhooks, serving
/healthz, /readyz and /metrics (and the HTTP API with api.enabled) on
http.listen, over TLS with http.tls_cert_file, until SIGINT or SIGTERM.
SIGHUP reads the TLS certificate and key again. Exit status: 0 after a
signal, 1 when a component failed, 2 on a configuration error.
`,
	"check-config": `Usage: meshhook-alerts [--config FILE] check-config

Loads the configuration (defaults, file, environment) and validates it,
naming every bad field, and reads the TLS files it names. Exit status: 0
valid, 2 invalid.
`,
	"version": `Usage: meshhook-alerts version

Prints the version. Exit status: 0.
`,
	"help": `Usage: meshhook-alerts help [COMMAND]

Prints the list of commands, or COMMAND's help (the same as
"meshhook-alerts COMMAND --help"), on standard output. Exit status: 0, or 2
for an unknown command.
`,
}

// commands are the subcommands cli knows.
var commands = []string{"run", "check-config", "seal", "verify", "send-test", "version", "help"}

// runHelp implements `meshhook-alerts help [COMMAND]`: the help a command
// prints for --help, but on stdout, since it was asked for.
func runHelp(ctx context.Context, configPath string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meshhook-alerts help", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, bareUsage["help"]) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	switch {
	case fs.NArg() == 0:
		return cli(ctx, []string{"--help"}, nil, stdout, stdout)
	case fs.NArg() > 1:
		fmt.Fprintf(stderr, "meshhook-alerts help: one command at a time, got %v\n", fs.Args())
		return exitUsage
	case fs.Arg(0) == "help":
		fmt.Fprint(stdout, bareUsage["help"])
		return exitOK
	case !slices.Contains(commands, fs.Arg(0)):
		fmt.Fprintf(stderr, "meshhook-alerts help: unknown command %q; the commands are %s\n",
			fs.Arg(0), strings.Join(commands, ", "))
		return exitUsage
	}
	with := []string{fs.Arg(0), "--help"}
	if configPath != "" {
		with = append([]string{"--config", configPath}, with...)
	}
	return cli(ctx, with, nil, stdout, stdout)
}

// parseBare parses the arguments of a command without flags of its own:
// only --help is accepted. ok is false when the caller must exit with code.
func parseBare(cmd string, args []string, stderr io.Writer) (code int, ok bool) {
	fs := flag.NewFlagSet("meshhook-alerts "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, bareUsage[cmd]) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshhook-alerts: unexpected arguments after %q: %v\n", cmd, fs.Args())
		return exitUsage, false
	}
	return 0, true
}
