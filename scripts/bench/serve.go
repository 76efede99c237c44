package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meshhook/meshhook-alerts/internal/harness/benchstat"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
)

// The durable runs keep the Supabase stand-in and the receiver in a child
// process, so that this process's CPU time is the daemon's side alone
// (sender, claims, store client) and the stand-in's is reported apart: on a
// hosted Supabase project PostgREST and PostgreSQL run elsewhere.

// serveInfo is what the child prints once its servers are up.
type serveInfo struct {
	SupabaseURL string `json:"supabase_url"`
	ServiceKey  string `json:"service_key"`
	DatabaseURL string `json:"database_url"`
	ReceiverURL string `json:"receiver_url"`
}

// serveChild runs the stand-in and a receiver until stdin closes.
func serveChild(ctx context.Context) error {
	si, err := standin.Start(ctx, standin.Options{MeshHook: true})
	if err != nil {
		return err
	}
	defer si.Close()
	rcv, err := newReceiver()
	if err != nil {
		return err
	}
	defer rcv.Close()
	if err := json.NewEncoder(os.Stdout).Encode(serveInfo{SupabaseURL: si.URL, ServiceKey: si.ServiceRoleKey,
		DatabaseURL: si.DatabaseURL, ReceiverURL: rcv.url}); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// servers is a running child: the stand-in and the receiver.
type servers struct {
	serveInfo
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pool  *pgxpool.Pool
}

func startServers(ctx context.Context) (*servers, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-serve")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &servers{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("stand-in child: %w", err)
	}
	if err := json.Unmarshal(line, &s.serveInfo); err != nil {
		s.Close()
		return nil, fmt.Errorf("stand-in child: %w", err)
	}
	if s.pool, err = pgxpool.New(ctx, s.DatabaseURL); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// hits is the number of POSTs the child's receiver answered.
func (s *servers) hits() (int64, error) {
	res, err := http.Get(s.ReceiverURL[:len(s.ReceiverURL)-len("/hook")] + "/hits")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(b), 10, 64)
}

// cpu is the child's CPU time so far.
func (s *servers) cpu() time.Duration {
	d, _ := benchstat.ProcessCPU(s.cmd.Process.Pid)
	return d
}

// Close stops the child (it removes its database).
func (s *servers) Close() {
	if s.pool != nil {
		s.pool.Close()
	}
	_ = s.stdin.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}
