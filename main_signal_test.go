package main

import (
	"bufio"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// A command whose output was closed (`meshhook-alerts help | head -1`)
// ends with status 0, not killed by SIGPIPE.
func TestClosedStdoutIsNotFatal(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	require.NoError(t, r.Close()) // nobody reads
	cmd := exec.Command(os.Args[0], "help")
	cmd.Env = append(os.Environ(), envTestDaemon+"=1")
	cmd.Stdout = w
	err = cmd.Run()
	require.NoError(t, w.Close())
	require.NoError(t, err, "help with a closed stdout exits 0")
}

// A daemon whose log pipe went away keeps running (and serving) instead of
// dying of SIGPIPE at its next log line, and SIGTERM still stops it
// cleanly, with status 0. SIGINT too.
func TestDaemonSurvivesAClosedLogPipe(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			r, w, err := os.Pipe()
			require.NoError(t, err)
			cmd := exec.Command(os.Args[0], "run")
			// No database: the daemon keeps retrying it, which is enough
			// to run, log and serve /healthz.
			cmd.Env = append(os.Environ(), envTestDaemon+"=1", "SUPABASE_URL=http://127.0.0.1:1",
				"SUPABASE_SERVICE_ROLE_KEY="+pgtest.ServiceRoleKey(), "MESHHOOK_ALERTS_HTTP_LISTEN=127.0.0.1:0")
			cmd.Stdout, cmd.Stderr = w, w
			require.NoError(t, cmd.Start())
			require.NoError(t, w.Close())
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-done
				done <- nil
			})

			// Read the log until the listener's address, then stop reading.
			addrRE := regexp.MustCompile(`"msg":"operational endpoints listening","addr":"([^"]+)"`)
			sc := bufio.NewScanner(r)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			addr := ""
			for addr == "" && sc.Scan() {
				if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
					addr = m[1]
				}
			}
			require.NotEmpty(t, addr, "the daemon logs where it listens")
			require.NoError(t, r.Close())

			// SIGHUP makes the daemon log a line, now into a closed pipe.
			require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
			healthy := func() bool {
				resp, err := http.Get("http://" + addr + "/healthz")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			}
			// It logged into the closed pipe at least once by now: the
			// SIGHUP line, and the retries of the unreachable database.
			for range 20 {
				select {
				case err := <-done:
					done <- err
					t.Fatalf("the daemon died with its log pipe closed: %v", err)
				case <-time.After(100 * time.Millisecond):
				}
				require.True(t, healthy(), "the daemon still serves")
			}

			require.NoError(t, cmd.Process.Signal(sig))
			select {
			case err := <-done:
				done <- err
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					t.Fatalf("the daemon exited %v after %s", exit, sig)
				}
				assert.NoError(t, err, "exit status 0 after %s", sig)
			case <-time.After(60 * time.Second):
				t.Fatalf("the daemon did not stop on %s", sig)
			}
		})
	}
}
