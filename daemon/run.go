package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/config"
	"github.com/meshhook/meshhook-alerts/internal/ops"
	"github.com/meshhook/meshhook-alerts/internal/sdnotify"
	"github.com/meshhook/meshhook-alerts/realtime"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
	"github.com/oklog/run"
	"go.uber.org/zap"
)

// actor is a long-running component of the daemon.
type actor struct {
	name string
	run  func(context.Context) error
}

// Run builds the daemon's components leaves-first from the configuration
// and runs them until ctx ends, a signal arrives or one of them fails.
func Run(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	log.Info("starting", zap.String("version", config.Version()), zap.Any("config", cfg.Redacted()))

	store, err := supabase.New(supabase.Options{
		URL: cfg.Supabase.URL, ServiceKey: cfg.Supabase.ServiceRoleKey.Value(), Schema: cfg.Supabase.Schema,
		Timeout: cfg.Supabase.RequestTimeout, MaxRetries: cfg.Supabase.MaxRetries, Logger: log.Named("supabase"),
	})
	if err != nil {
		return err
	}
	defer store.Close()

	mapping := MappingFromConfig(cfg.Watch)
	keys, err := Keyring(cfg.Secrets)
	if err != nil {
		return err
	}
	opener := newOpener(cfg.Secrets, keys, log.Named("alerts"))
	// The rule registry comes first: every component that reads rules
	// gets it when it is built.
	registry := alerts.NewRuleSet()
	rules := NewSealedStore(NewSupabaseStore(store, mapping), opener)

	var disabled *ops.DisabledRules // rules disabled because their endpoint is gone, for the watchdog
	if cfg.Ops.AlertWebhookURL.IsSet() {
		disabled = &ops.DisabledRules{}
	}
	deliveries := &Deliveries{Store: store, Rules: registry, Opener: opener, Loaded: registry.Loaded,
		OnDisabled: func(id, reason string) {
			if disabled != nil {
				disabled.Add(id, reason, time.Now())
			}
		}}
	dispatch := ops.NewDispatchLatency()
	sopts := SenderOptions(cfg.Sender)
	sopts.Observer = dispatch
	snd, err := sender.New(sopts, deliveries, log.Named("sender"))
	if err != nil {
		return err
	}

	engine, err := alerts.New(alerts.Options{
		Rules: registry, Mapping: mapping, RunsChannel: "runs", ConfigsChannel: "alert-configs",
		ReconcileInterval: cfg.Alerts.ReconcileInterval, ReconcileLagAlert: cfg.Alerts.ReconcileLagAlert,
		ReconcileDelay: reconcileDelay(cfg),
		CatchupOverlap: cfg.Alerts.CatchupOverlap, CatchupMaxLookback: cfg.Alerts.CatchupMaxLookback,
		ResyncInterval: cfg.Alerts.ResyncInterval, TimerTick: cfg.Alerts.TimerTick, LinkBaseURL: cfg.Alerts.LinkBaseURL,
	}, rules, deliveries.Submitter(snd), log.Named("alerts"))
	if err != nil {
		return err
	}

	actors := []actor{{"sender", snd.Run}}
	// Realtime makes alerts fast; reconciliation makes them complete. With
	// Realtime disabled the engine finds every change by reconciliation.
	rtStats := func() realtime.Stats { return realtime.Stats{LastError: "realtime.enabled is false"} }
	var events <-chan realtime.Event
	if cfg.Realtime.Enabled {
		rt, err := realtime.New(realtime.Config{
			URL: cfg.Realtime.URL, APIKey: cfg.Supabase.ServiceRoleKey.Value(), Vsn: cfg.Realtime.VSN,
			HeartbeatInterval: cfg.Realtime.HeartbeatInterval, JoinTimeout: cfg.Realtime.JoinTimeout,
			ReconnectInitial: cfg.Realtime.ReconnectInitial, ReconnectMax: cfg.Realtime.ReconnectMax,
			BufferSize: cfg.Realtime.BufferSize, Logger: log,
		},
			realtime.ChannelSpec{Name: "runs", Bindings: []realtime.Binding{{Event: "*", Schema: cfg.Watch.Schema, Table: cfg.Watch.Table}}},
			realtime.ChannelSpec{Name: "alert-configs", Bindings: []realtime.Binding{{Event: "*", Schema: cfg.Supabase.Schema, Table: cfg.Alerts.ConfigsTable}}},
		)
		if err != nil {
			return err
		}
		rtStats, events = rt.Stats, rt.Events()
		actors = append(actors, actor{"realtime", rt.Run})
	} else {
		log.Info("realtime disabled: changes are found by reconciliation alone",
			zap.Duration("reconcile_interval", cfg.Alerts.ReconcileInterval))
	}

	// SIGHUP reloads the listener's TLS files. It is caught from here on,
	// so that it never ends the daemon as its default action would.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloadTLS := func() error { return errNoTLS }

	subscribed := ops.RealtimeSubscribed(rtStats)
	notifier := sdnotify.FromEnv(nil)
	actors = append(actors,
		actor{"alerts", func(ctx context.Context) error { return engine.Run(ctx, events) }},
		// Ready once the rules are loaded and the first reconciliation is
		// done: alerting works without Realtime, so Realtime is not waited
		// for (it is reported on /readyz as degraded).
		actor{"systemd", func(ctx context.Context) error {
			return ops.Systemd(ctx, notifier, engine.Started, log.Named("systemd"))
		}},
	)
	backlog := newBacklog(cfg.Ops, store, log.Named("ops"))
	if cfg.Ops.AlertWebhookURL.IsSet() || cfg.HTTP.Listen != "" {
		actors = append(actors, actor{"backlog", backlog.Run})
	}
	if disabled != nil {
		actors = append(actors, watchdogActor(cfg.Ops, cfg.Alerts.ReconcileLagAlert, backlog, snd, subscribed,
			engine.ReconcileLag, disabled, log.Named("watchdog")))
	}
	if cfg.HTTP.Listen != "" {
		checks := map[string]ops.Check{"rules": ops.RulesLoaded(engine.RulesLoaded)}
		opsrv, err := ops.New(cfg.HTTP.Listen, checks, log.Named("ops"),
			ops.NewRealtimeCollector(rtStats), ops.NewEngineCollector(engine), ops.NewSenderCollector(snd.Stats), dispatch, backlog)
		if err != nil {
			return err
		}
		if cfg.Realtime.Enabled {
			opsrv.Degraded("realtime", subscribed)
		}
		opsrv.Degraded("reconcile", engine.ReconcileCheck)
		if cfg.API.Enabled {
			h, err := newAPI(cfg, store, snd, rtStats, engine.Rules(), reconcileStatus(engine), keys, opener, log.Named("api"))
			if err != nil {
				return err
			}
			opsrv.Mount(api.Prefix, h)
			if err := MountUI(cfg, opsrv.Mount); err != nil {
				return err
			}
		}
		if cfg.HTTP.Pprof {
			opsrv.Mount("/debug/pprof/", pprofHandler(cfg))
		}
		if cfg.HTTP.TLS() {
			if err := opsrv.UseTLS(ops.TLSFiles{CertFile: cfg.HTTP.TLSCertFile, KeyFile: cfg.HTTP.TLSKeyFile,
				ClientCAFile: cfg.HTTP.TLSClientCAFile}); err != nil {
				return fmt.Errorf("http.tls_cert_file: %w", err)
			}
			reloadTLS = opsrv.ReloadTLS
		}
		if _, err := opsrv.Listen(); err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
		actors = append(actors, actor{"ops", opsrv.Run})
	}

	actors = append(actors, reloadOnHUP(hup, reloadTLS, log))

	var g run.Group
	g.Add(run.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	for _, c := range actors {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			err := c.run(ctx)
			if ctx.Err() != nil {
				return ctx.Err() // stopped because the group asked it to
			}
			if err == nil {
				err = errors.New("stopped unexpectedly")
			}
			return fmt.Errorf("%s: %w", c.name, err)
		}, func(error) { cancel() })
	}
	err = g.Run()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil // the caller asked us to stop
	}
	if errors.Is(err, run.ErrSignal) {
		log.Info("stopped", zap.String("reason", err.Error()))
		return nil
	}
	return err
}

// reconcileDelay is how long reconciliation leaves changes to Realtime:
// alerts.reconcile_delay, or nothing when Realtime is disabled.
func reconcileDelay(cfg *config.Config) time.Duration {
	if !cfg.Realtime.Enabled {
		return 0
	}
	return cfg.Alerts.ReconcileDelay
}

// reconcileStatus reports the engine's reconciliation to the API.
func reconcileStatus(e *alerts.Engine) func() api.ReconcileStatus {
	return func() api.ReconcileStatus {
		st := e.Stats()
		var lastErr string
		if err := e.ReconcileCheck(); err != nil {
			lastErr = err.Error()
		}
		return api.ReconcileStatus{Held: st.ReconcileHeld, Lag: st.ReconcileLag, Found: st.ReconcileFound, LastError: lastErr}
	}
}
