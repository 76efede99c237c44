// Command standin runs the local Supabase stand-in on its own (a throwaway
// PostgreSQL cluster with MeshHook's tables and meshhook-alerts' migrations,
// the PostgREST subset and the Realtime server) until interrupted, and
// prints what a client needs to use it:
//
//	go run ./scripts/standin [-addr 127.0.0.1:54321] [-realtime-max-events-per-second 100]
//
// The -realtime-* flags set the Realtime server's postgres_changes limits
// (poll batching, on by default, and the event quota, off by default); each
// can also be preset by its environment variable, e.g.
// STANDIN_REALTIME_MAX_EVENTS_PER_SECOND=500. Changes skipped over the quota
// are logged, as Realtime logs them, on standard error.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:54321", "listen address of the stand-in's HTTP server")
	verbose := flag.Bool("v", false, "log the stand-in's requests and frames")
	var rt realtimetest.Options
	if err := standin.RealtimeLimitFlags(flag.CommandLine, &rt); err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(2)
	}
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logCfg := zap.NewDevelopmentConfig()
	logCfg.DisableStacktrace = true
	if !*verbose {
		logCfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	}
	log, err := logCfg.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
	si, err := standin.Start(ctx, standin.Options{Addr: *addr, MeshHook: true, Logger: log, Realtime: rt})
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
	defer si.Close()
	fmt.Printf("SUPABASE_URL=%s\nSUPABASE_SECRET_KEY=%s\nSUPABASE_PUBLISHABLE_KEY=%s\nSUPABASE_SERVICE_ROLE_KEY=%s\nSUPABASE_ANON_KEY=%s\nDATABASE_URL=%s\n",
		si.URL, si.SecretKey, si.PublishableKey, si.ServiceRoleKey, si.AnonKey, si.DatabaseURL)
	fmt.Fprintln(os.Stderr, "stand-in running; Ctrl-C stops it and deletes its database")
	<-ctx.Done()
}
