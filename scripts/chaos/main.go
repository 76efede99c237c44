// Command chaos runs the meshhook-alerts chaos test: a throwaway PostgreSQL
// cluster and the local Supabase stand-in, the real daemon binary as a
// child process, and for -duration a generator driving runs while faults
// are injected (Realtime drops, 1012 closes and dropped changes, REST 503
// bursts, receiver 5xx/429/timeouts, SIGKILLs with restarts). It prints a
// one-line summary and exits 1 on any violation.
//
//	go run ./scripts/chaos -duration 5m [-seed N] [-rate 4] [-keep]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/meshhook/meshhook-alerts/internal/harness/chaos"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
)

// Exit codes.
const (
	exitOK        = 0
	exitViolation = 1 // the run found lost, unexpected or duplicate alerts
	exitError     = 2 // the run could not be carried out
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	duration := fs.Duration("duration", 5*time.Minute, "length of the fault window")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "seed of every random choice")
	rate := fs.Float64("rate", 4, "new workflow runs per second")
	settle := fs.Duration("settle", 90*time.Second, "longest wait for the daemon to finish after the window")
	keep := fs.Bool("keep", false, "keep the daemon logs (their directory is printed)")
	verbose := fs.Bool("v", false, "print progress and every injected fault")
	daemon := fs.String("daemon", "", "run this daemon binary instead of building the module's")
	quota := fs.Bool("quota", true, "give the stand-in's Realtime an event quota the load goes over now and then (chaos.Quota)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	if *duration <= 0 || *rate <= 0 || *settle <= 0 {
		fmt.Fprintln(os.Stderr, "chaos: -duration, -rate and -settle must be positive")
		return exitError
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "meshhook-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return exitError
	}
	logf := func(string, ...any) {}
	if *verbose {
		logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	o := chaos.Options{Binary: *daemon, Duration: *duration, Seed: *seed, RunRate: *rate, Settle: *settle, Logf: logf}
	s, err := chaosRun(ctx, dir, o, *quota)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		fmt.Fprintln(os.Stderr, "chaos: daemon logs in", dir)
		return exitError
	}
	fmt.Println(s.String())
	for i, v := range s.Violations {
		if i == 50 {
			fmt.Fprintf(os.Stderr, "chaos: ... and %d more violations\n", len(s.Violations)-i)
			break
		}
		fmt.Fprintln(os.Stderr, "chaos: violation:", v)
	}
	if *keep || !s.OK() {
		fmt.Fprintln(os.Stderr, "chaos: daemon logs in", dir)
	} else {
		os.RemoveAll(dir)
	}
	if !s.OK() {
		return exitViolation
	}
	return exitOK
}

// chaosRun builds the daemon (unless o.Binary is set), starts a stand-in on
// a new cluster and runs the chaos test.
func chaosRun(ctx context.Context, dir string, o chaos.Options, quota bool) (*chaos.Summary, error) {
	if o.Binary == "" {
		o.Logf("chaos: building the daemon into %s", dir)
		bin, err := standin.BuildDaemon(ctx, dir)
		if err != nil {
			return nil, err
		}
		o.Binary = bin
	}
	o.Logf("chaos: starting PostgreSQL and the stand-in")
	so := standin.Options{MeshHook: true}
	if quota {
		so.Realtime = chaos.Quota()
	}
	si, err := standin.Start(ctx, so)
	if err != nil {
		return nil, err
	}
	defer si.Close()
	o.StandIn, o.WorkDir = si, dir
	return chaos.Run(ctx, o)
}
