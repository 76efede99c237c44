package pgtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const envReaperChild = "PGTEST_REAPER_CHILD"

// TestReaperChild is the process TestClusterOfAKilledProcessIsStopped
// kills: it starts a cluster, says where, and waits to be killed.
func TestReaperChild(t *testing.T) {
	if os.Getenv(envReaperChild) != "1" {
		t.Skip("run by TestClusterOfAKilledProcessIsStopped")
	}
	c, err := Start(context.Background(), StartOptions{})
	require.NoError(t, err)
	fmt.Printf("cluster %d %s\n", c.port, c.dir)
	select {}
}

// A process that dies without stopping its cluster (SIGKILL here; Ctrl-C
// on a test run or a closed output do the same) does not leave the server
// running or its files behind: the reaper stops it and removes them.
func TestClusterOfAKilledProcessIsStopped(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestReaperChild$", "-test.v")
	cmd.Env = append(os.Environ(), envReaperChild+"=1")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var port int
	var dir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, _ := fmt.Sscanf(sc.Text(), "cluster %d %s", &port, &dir); n == 2 {
			break
		}
	}
	require.NotZero(t, port, "the child started a cluster")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err, "the server is up")
	conn.Close()

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Eventually(t, func() bool {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			return false
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return true
	}, 60*time.Second, 100*time.Millisecond, "the server is stopped and %s removed", dir)
}
