package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/sdnotify"
	"github.com/meshhook/meshhook-alerts/realtime"
)

// RealtimeSubscribed is ready while every Realtime channel's subscription is
// confirmed.
func RealtimeSubscribed(stats func() realtime.Stats) Check {
	return func() error {
		var not []string
		for _, c := range stats().Channels {
			if c.State != realtime.StateSubscribed {
				not = append(not, fmt.Sprintf("%s is %s", c.Name, c.State))
			}
		}
		if len(not) > 0 {
			return fmt.Errorf("realtime channels not subscribed: %s", strings.Join(not, ", "))
		}
		return nil
	}
}

// Systemd tells systemd READY=1 the first time ready() holds, keeps its
// watchdog fed while the process runs, and says STOPPING=1 when ctx ends.
// Without systemd it only waits for ctx.
func Systemd(ctx context.Context, n *sdnotify.Notifier, ready func() bool, log *zap.Logger) error {
	if !n.Enabled() {
		<-ctx.Done()
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wd := make(chan error, 1)
	go func() { wd <- n.RunWatchdog(wctx, nil) }()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	sent := false
	for !sent {
		select {
		case <-ctx.Done():
			sent = true
		case <-t.C:
			if ready() {
				if err := n.Notify(sdnotify.Ready + "\nSTATUS=rules loaded; alerting"); err != nil {
					log.Warn("systemd notification failed", zap.Error(err))
				}
				sent = true
			}
		}
	}
	<-ctx.Done()
	if err := n.Notify(sdnotify.Stopping); err != nil {
		log.Warn("systemd notification failed", zap.Error(err))
	}
	cancel()
	return <-wd
}

// RulesLoaded is ready once the rules engine has loaded the alert rules.
func RulesLoaded(loaded func() bool) Check {
	return func() error {
		if !loaded() {
			return errors.New("alert rules not loaded yet")
		}
		return nil
	}
}
