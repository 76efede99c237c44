// Package sdnotify speaks systemd's service notification protocol
// (sd_notify): READY=1 once the daemon is useful, STOPPING=1 when it shuts
// down, and WATCHDOG=1 keep-alives when the unit sets WatchdogSec=. Without
// $NOTIFY_SOCKET (not started by systemd with Type=notify) every call is a
// no-op.
package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"time"
)

// Messages understood by systemd.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Notifier sends notifications to the socket systemd passed in the
// environment. The zero value is a no-op Notifier.
type Notifier struct {
	socket   string
	watchdog time.Duration // 0: no watchdog requested
}

// FromEnv reads $NOTIFY_SOCKET and $WATCHDOG_USEC (honouring $WATCHDOG_PID)
// from getenv (os.Getenv when nil).
func FromEnv(getenv func(string) string) *Notifier {
	if getenv == nil {
		getenv = os.Getenv
	}
	n := &Notifier{socket: getenv("NOTIFY_SOCKET")}
	if usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64); err == nil && usec > 0 {
		pid := getenv("WATCHDOG_PID")
		if pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(usec) * time.Microsecond
		}
	}
	return n
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// WatchdogInterval is the interval systemd expects keep-alives within; 0
// when the unit has no watchdog.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Notify sends one state string, e.g. Ready or "STATUS=subscribed".
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	name := n.socket
	if name[0] == '@' { // abstract socket namespace
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// RunWatchdog sends WATCHDOG=1 at half the watchdog interval while healthy()
// returns true, until ctx ends. It returns at once when there is no watchdog.
func (n *Notifier) RunWatchdog(ctx context.Context, healthy func() bool) error {
	iv := n.WatchdogInterval()
	if iv <= 0 || !n.Enabled() {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if healthy == nil || healthy() {
				if err := n.Notify(Watchdog); err != nil && !errors.Is(err, net.ErrClosed) {
					return err
				}
			}
		}
	}
}
