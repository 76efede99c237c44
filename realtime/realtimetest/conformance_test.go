package realtimetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/conformance"
	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

const conformanceDDL = `
create table public.rt_conf (id bigint primary key, kind text not null, note text);
alter publication supabase_realtime add table public.rt_conf;
`

// TestConformanceRealtimeJS runs scripts/conformance/realtime.mjs, which
// drives the stand-in with the official @supabase/realtime-js client, once
// with the client's default serializer and once with vsn 1.0.0. Set
// REALTIME_CONFORMANCE_LOG=1 to see the client's log even when it passes.
func TestConformanceRealtimeJS(t *testing.T) {
	node, confDir := conformance.Node(t, "@supabase/realtime-js")

	for _, tc := range []struct{ name, vsn, wantVsn string }{
		{"default vsn", "", "2.0.0"},
		{"vsn 1.0.0", "1.0.0", "1.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newCDCEnv(t, conformanceDDL, Options{})
			wsBase := env.ts.URL
			key := pgtest.ServiceRoleKey()

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, filepath.Join(confDir, "realtime.mjs"))
			cmd.Dir = confDir
			cmd.Env = append(os.Environ(),
				"REALTIME_URL="+wsBase,
				"REALTIME_APIKEY="+key,
				"REALTIME_VSN="+tc.vsn,
				"REALTIME_TABLE=rt_conf",
			)
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			var waitErr error
			var waitOnce sync.Once
			wait := func() error {
				waitOnce.Do(func() {
					for range lines { // the pipe must be drained before Wait
					}
					waitErr = cmd.Wait()
				})
				return waitErr
			}
			defer func() {
				cancel()
				_ = wait()
				if t.Failed() || os.Getenv("REALTIME_CONFORMANCE_LOG") != "" {
					t.Logf("realtime.mjs stderr:\n%s", stderr.String())
				}
			}()

			expect := func(want string) {
				t.Helper()
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatalf("realtime.mjs exited before %q", want)
					}
					if line != want {
						t.Fatalf("realtime.mjs said %q, want %q", line, want)
					}
				case <-time.After(90 * time.Second):
					t.Fatalf("realtime.mjs did not say %q in time", want)
				}
			}

			expect("READY 1")
			assert.Equal(t, []string{tc.wantVsn}, env.ts.Serializers())
			joinPayload, ok := env.ts.LastJoinPayload("conformance")
			require.True(t, ok)
			var jp struct {
				AccessToken string `json:"access_token"`
				Config      struct {
					PostgresChanges []map[string]any `json:"postgres_changes"`
				} `json:"config"`
			}
			require.NoError(t, json.Unmarshal(joinPayload, &jp))
			assert.Equal(t, key, jp.AccessToken)
			assert.Len(t, jp.Config.PostgresChanges, 4)

			env.exec(t, `insert into public.rt_conf values (1, 'keep', 'first')`)
			env.exec(t, `insert into public.rt_conf values (2, 'skip', 'second')`)
			env.exec(t, `update public.rt_conf set note = 'changed' where id = 1`)
			env.exec(t, `delete from public.rt_conf where id = 2`)
			expect("PHASE1 OK")

			env.ts.KillConnections()
			expect("READY 2")
			assert.GreaterOrEqual(t, env.ts.TotalConnections(), 2, "realtime-js reconnected")
			env.exec(t, `insert into public.rt_conf values (3, 'keep', 'third')`)
			expect("PHASE2 OK")
			expect("DONE")
			require.NoError(t, wait())
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for the writer goroutine of exec.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
