package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Daemon runs the daemon binary as a child process that can be killed and
// restarted. Each run logs to its own file in LogDir.
type Daemon struct {
	Binary string
	Env    []string // appended to the parent's environment
	LogDir string

	cmd  *exec.Cmd
	done chan error
	log  *os.File
	runs int
}

// Start starts a new daemon process. The previous one must have ended.
func (d *Daemon) Start() error {
	if d.cmd != nil {
		return errors.New("chaos: daemon already running")
	}
	d.runs++
	f, err := os.Create(filepath.Join(d.LogDir, fmt.Sprintf("daemon-%d.log", d.runs)))
	if err != nil {
		return fmt.Errorf("chaos: daemon log: %w", err)
	}
	cmd := exec.Command(d.Binary, "run")
	cmd.Env = append(os.Environ(), d.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("chaos: start daemon: %w", err)
	}
	d.cmd, d.log, d.done = cmd, f, make(chan error, 1)
	go func() { d.done <- cmd.Wait() }()
	return nil
}

// Exited reports whether the running daemon has exited on its own, with
// its wait error.
func (d *Daemon) Exited() (bool, error) {
	if d.cmd == nil {
		return false, nil
	}
	select {
	case err := <-d.done:
		d.done <- err
		return true, err
	default:
		return false, nil
	}
}

// Kill ends the daemon with SIGKILL: no draining, no flushing.
func (d *Daemon) Kill() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	d.reset()
}

// Stop asks the daemon to shut down with SIGTERM and waits up to grace,
// then kills it. It returns the process's wait error when it did not exit
// cleanly in time.
func (d *Daemon) Stop(grace time.Duration) error {
	if d.cmd == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-d.done:
	case <-time.After(grace):
		_ = d.cmd.Process.Kill()
		<-d.done
		err = fmt.Errorf("chaos: daemon did not stop within %s after SIGTERM", grace)
	}
	d.reset()
	return err
}

func (d *Daemon) reset() {
	d.log.Close()
	d.cmd, d.log = nil, nil
}

// Runs returns how many daemon processes were started.
func (d *Daemon) Runs() int { return d.runs }
