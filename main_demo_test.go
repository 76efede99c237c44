package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// demoWait bounds each phase of TestDemoKeep: a cold build of the demo and
// the daemon takes minutes on a busy machine.
const demoWait = 5 * time.Minute

// lineLog collects a process's output lines as they come.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// find returns the first submatch of re in the output so far.
func (l *lineLog) find(re *regexp.Regexp) string {
	if m := re.FindStringSubmatch(l.String()); m != nil {
		return m[1]
	}
	return ""
}

// TestDemoKeep runs `scripts/demo.sh --keep` as a newcomer does: it waits
// until the web UI answers at the printed URL and a run has been alerted,
// signs the printed demo user in the way the UI does (GET /api/auth/config,
// then a password sign-in at the stand-in's Supabase Auth, then the API
// with the user's token), then sends SIGINT and checks that the demo ends
// with status 130 (or 0) after stopping PostgreSQL.
func TestDemoKeep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo")
	}
	cmd := exec.Command("scripts/demo.sh", "--keep", "-interval", "500ms")
	// Its own process group, so that a failed test can stop all of it; the
	// SIGINT below goes to the script alone, which passes it on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &lineLog{}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.add(sc.Text())
		}
		close(done)
	}()
	var waitErr error
	exited := make(chan struct{})
	go func() { <-done; waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			<-exited
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", out.String())
		}
	})

	uiRE := regexp.MustCompile(`the web UI is at (http://\S+/ui/)`)
	var ui string
	require.Eventually(t, func() bool { ui = out.find(uiRE); return ui != "" }, demoWait, 100*time.Millisecond,
		"the demo prints the UI's URL")
	email := out.find(regexp.MustCompile(`sign in with email (\S+) and password`))
	password := out.find(regexp.MustCompile(`and password (\S+) \(`))
	operator := out.find(regexp.MustCompile(`paste the operator token (\S+)`))
	dbURL := out.find(regexp.MustCompile(`the database, for psql: (\S+)`))
	require.NotEmpty(t, email)
	require.NotEmpty(t, password)
	require.NotEmpty(t, operator)
	require.NotEmpty(t, dbURL)
	root := strings.TrimSuffix(ui, "/ui/")

	// The UI answers, and a run has been alerted and delivered.
	resp, err := http.Get(ui)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		code, body := call(t, http.MethodGet, root+"/api/alerts/logs?status=succeeded&limit=1", operator, nil)
		return code == http.StatusOK && len(body["alerts"].([]any)) > 0
	}, time.Minute, 100*time.Millisecond, "a run is alerted and delivered")

	// Sign in as the UI does: the public sign-in settings, Auth, the API.
	resp, err = http.Get(root + "/api/auth/config")
	require.NoError(t, err)
	var ac struct {
		Supabase struct {
			URL            string `json:"url"`
			PublishableKey string `json:"publishable_key"`
		} `json:"supabase"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ac))
	resp.Body.Close()
	require.NotEmpty(t, ac.Supabase.URL)
	body, err := json.Marshal(map[string]string{"email": email, "password": password})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, ac.Supabase.URL+"/auth/v1/token?grant_type=password", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("apikey", ac.Supabase.PublishableKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var sess struct {
		AccessToken string `json:"access_token"`
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&sess))
	resp.Body.Close()
	code, st := call(t, http.MethodGet, root+"/api/status", sess.AccessToken, nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, false, st["caller"].(map[string]any)["operator"])
	code, rules := call(t, http.MethodGet, root+"/api/alerts/config", sess.AccessToken, nil)
	require.Equal(t, http.StatusOK, code)
	assert.Len(t, rules["rules"], 3, "the demo user sees the seeded rules")

	// Ctrl-C: the demo stops everything and says so.
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("the demo did not stop within a minute of SIGINT")
	}
	var ee *exec.ExitError
	if waitErr != nil {
		require.ErrorAs(t, waitErr, &ee)
		assert.Equal(t, 130, ee.ExitCode(), "exit status after SIGINT")
	}
	assert.Contains(t, out.String(), "stopped; nothing is left running")
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err == nil {
		c.Close()
	}
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "PostgreSQL at %s is stopped (dial: %v)", u.Host, err)
	_, err = http.Get(ui)
	assert.Error(t, err, "the daemon is stopped")
}
