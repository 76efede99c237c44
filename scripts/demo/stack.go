package main

import (
	"context"
	"os"

	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
)

// stack is what both demos start before the daemon: a temporary directory
// for the build, the daemon's log file, the daemon binary and the
// stand-in.
type stack struct {
	tmp string
	log *os.File // kept: it is where to look when something is off
	bin string
	si  *standin.StandIn
}

// startStack builds the daemon and starts the stand-in; serves names what
// the stand-in serves, for the story.
func startStack(ctx context.Context, opts standin.Options, serves string) (_ *stack, err error) {
	st := &stack{}
	defer func() {
		if err != nil {
			st.close()
		}
	}()
	if st.tmp, err = os.MkdirTemp("", "meshhook-demo-"); err != nil {
		return nil, err
	}
	if st.log, err = os.CreateTemp("", "meshhook-demo-daemon-*.log"); err != nil {
		return nil, err
	}
	say("building meshhook-alerts")
	if st.bin, err = withProgress(ctx, "building meshhook-alerts", func() (string, error) { return standin.BuildDaemon(ctx, st.tmp) }); err != nil {
		return nil, err
	}
	say("starting PostgreSQL and the local Supabase stand-in (%s)", serves)
	if st.si, err = withProgress(ctx, "starting PostgreSQL", func() (*standin.StandIn, error) { return standin.Start(ctx, opts) }); err != nil {
		return nil, err
	}
	return st, nil
}

// close stops the stand-in and removes the build; the log stays.
func (s *stack) close() {
	if s.si != nil {
		s.si.Close()
	}
	if s.log != nil {
		s.log.Close()
	}
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
}
