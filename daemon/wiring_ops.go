package daemon

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/config"
	"github.com/meshhook/meshhook-alerts/internal/ops"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// newBacklog counts the pending alerts every ops.check_interval.
func newBacklog(c config.Ops, store *supabase.Store, log *zap.Logger) *ops.Backlog {
	return ops.NewBacklog(func(ctx context.Context) (int64, error) {
		return store.CountAlerts(ctx, supabase.AlertFilter{Statuses: []supabase.AlertStatus{supabase.StatusPending}})
	}, c.CheckInterval, log)
}

// watchdogActor builds the internal-alerts actor (ops.alert_webhook_url):
// it samples the sender's counters, Realtime readiness and the pending
// backlog and sends each condition's start and end to the operator webhook.
// Rules disabled because their endpoint answered 410 Gone (disabled) are
// reported once each.
func watchdogActor(c config.Ops, lagAlert time.Duration, backlog *ops.Backlog, snd *sender.Sender, subscribed ops.Check,
	lag func() time.Duration, disabled *ops.DisabledRules, log *zap.Logger) actor {
	w := ops.NewWatchdog(ops.Thresholds{
		FailureRatio: float64(c.FailurePercent) / 100, FailureWindow: c.FailureWindow,
		FailureMinAttempts: uint64(c.FailureMinAttempts), RealtimeDownAfter: c.RealtimeDownAfter,
		PendingBacklog: int64(c.PendingBacklog), ReconcileLag: lagAlert,
	}, nil)
	n := &ops.WebhookNotifier{Sender: snd, URL: c.AlertWebhookURL.Value(), Secret: c.AlertSecret.Value()}
	sample := func(context.Context) ops.Sample {
		var s ops.Sample
		for reason, k := range snd.Stats().Attempts {
			s.Attempts += k
			if reason != "ok" {
				s.Failures += k
			}
		}
		s.Subscribed = subscribed() == nil
		s.ReconcileLag = lag()
		s.Pending, s.PendingKnown = backlog.Last()
		s.Disabled = disabled.Drain()
		return s
	}
	return actor{"watchdog", func(ctx context.Context) error {
		return ops.RunWatchdog(ctx, w, c.CheckInterval, sample, func(ctx context.Context, nt ops.Notice) error {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return n.Notify(ctx, nt)
		}, log)
	}}
}

// pprofHandler serves Go's profiling endpoints (http.pprof) to the operator
// only: a heap profile or goroutine dump shows the daemon's memory, and so
// every tenant's rules and secrets, and a CPU profile or trace costs CPU.
// Requests must carry "Authorization: Bearer" with api.operator_token or
// the service-role key.
func pprofHandler(cfg *config.Config) http.Handler {
	return api.RequireOperator(ops.Pprof(), cfg.API.OperatorToken.Value(), cfg.Supabase.ServiceRoleKey.Value())
}

// errNoTLS is what a SIGHUP reloads without http.tls_cert_file: nothing.
var errNoTLS = errors.New("nothing to reload: http.tls_cert_file is not set")

// reloadOnHUP reads the listener's TLS files again on each signal from hup
// (SIGHUP, e.g. from a certbot deploy hook or systemctl reload). TLS
// handshakes look at the files anyway, at most once a second; the signal
// makes a renewal take effect at once and logs the outcome.
func reloadOnHUP(hup <-chan os.Signal, reload func() error, log *zap.Logger) actor {
	return actor{"reload", func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-hup:
				// The certificate source logs what it loaded or why not.
				if err := reload(); errors.Is(err, errNoTLS) {
					log.Info("SIGHUP received", zap.String("result", err.Error()))
				}
			}
		}
	}}
}
