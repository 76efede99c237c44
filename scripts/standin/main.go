// Command standin runs the local Supabase stand-in on its own (a throwaway
// PostgreSQL cluster with MeshHook's tables and meshhook-alerts' migrations,
// the PostgREST subset and the Realtime server) until interrupted, and
// prints what a client needs to use it:
//
//	go run ./scripts/standin [-addr 127.0.0.1:54321]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/standin"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:54321", "listen address of the stand-in's HTTP server")
	verbose := flag.Bool("v", false, "log the stand-in's requests and frames")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := zap.NewNop()
	if *verbose {
		log, _ = zap.NewDevelopment()
	}
	si, err := standin.Start(ctx, standin.Options{Addr: *addr, MeshHook: true, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
	defer si.Close()
	fmt.Printf("SUPABASE_URL=%s\nSUPABASE_SERVICE_ROLE_KEY=%s\nSUPABASE_ANON_KEY=%s\nDATABASE_URL=%s\n",
		si.URL, si.ServiceRoleKey, si.AnonKey, si.DatabaseURL)
	fmt.Fprintln(os.Stderr, "stand-in running; Ctrl-C stops it and deletes its database")
	<-ctx.Done()
}
