package daemon

import (
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/config"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/realtime"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
	"github.com/meshhook/meshhook-alerts/ui"
)

// newAPI builds the HTTP API (api.enabled) over the daemon's store, sender,
// Realtime client, rule cache and rule opener.
func newAPI(cfg *config.Config, store *supabase.Store, snd *sender.Sender, rtStats func() realtime.Stats,
	rules *alerts.RuleSet, reconcile func() api.ReconcileStatus, keys *seal.Keyring, opener *rulerow.Opener, log *zap.Logger) (http.Handler, error) {
	users, err := api.NewUserTokens(api.UserTokensOptions{
		JWKSURL: strings.TrimRight(cfg.Supabase.URL, "/") + api.JWKSPath, JWTSecret: cfg.API.JWTSecret.Value(),
		Logger: log.Named("api"),
	})
	if err != nil {
		return nil, err
	}
	// Changes by users are confirmed with Supabase Auth, through
	// supabase-go's Auth client, every call bounded by the REST timeout.
	sessions, err := api.NewSessions(api.SessionsOptions{
		URL: cfg.Supabase.URL, APIKey: cfg.Supabase.ServiceRoleKey.Value(),
		HTTPClient: api.DefaultAuthClient(cfg.Supabase.RequestTimeout),
	})
	if err != nil {
		return nil, err
	}
	a, err := api.New(api.Options{
		Store: store, Keyring: keys, Opener: opener, Tester: snd, Sessions: sessions,
		OperatorToken: cfg.API.OperatorToken.Value(), Users: users,
		SupabaseURL: cfg.Supabase.URL, PublishableKey: cfg.UI.SupabasePublishableKey,
		MaxBodyBytes: int64(cfg.API.MaxBodyBytes), AllowInsecureHTTP: cfg.Sender.AllowInsecureHTTP, Wake: snd.Wake,
		Status: api.Status{
			Realtime: func() api.RealtimeStatus { return realtimeStatus(rtStats()) },
			Rules: func() api.RulesStatus {
				return api.RulesStatus{Loaded: rules.Len(), Rejected: len(rules.Rejected())}
			},
			RulesOf:       func(ids []string) api.RulesStatus { return rulesOf(rules, ids) },
			RejectedRules: rules.Rejected,
			Reconcile:     reconcile,
			Circuits:      snd.Circuits,
		},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return a.Handler(), nil
}

// rulesOf counts which of the rules with these ids the cache holds and
// which it refused: a user's share of the rule cache.
func rulesOf(rules *alerts.RuleSet, ids []string) api.RulesStatus {
	var st api.RulesStatus
	rejected := rules.Rejected()
	for _, id := range ids {
		if _, ok := rules.Get(id); ok {
			st.Loaded++
		} else if _, ok := rejected[id]; ok {
			st.Rejected++
		}
	}
	return st
}

// realtimeStatus summarizes the Realtime client's state for GET /api/status.
// The client keeps no time of the last change, so the last frame's stands in.
func realtimeStatus(st realtime.Stats) api.RealtimeStatus {
	out := api.RealtimeStatus{Subscribed: len(st.Channels) > 0, LastEventAt: st.LastFrameAt, LastError: st.LastError}
	for _, c := range st.Channels {
		out.Channels = append(out.Channels, api.ChannelStatus{Name: c.Name, State: string(c.State)})
		if c.State != realtime.StateSubscribed {
			out.Subscribed = false
		}
	}
	return out
}

// MountUI serves the web UI under ui.path and redirects "/" there, when both
// ui.enabled and api.enabled are set (the UI calls the API from the browser).
func MountUI(cfg *config.Config, mount func(pattern string, h http.Handler)) error {
	if !cfg.API.Enabled || !cfg.UI.Enabled {
		return nil
	}
	// With a publishable key, users sign in at Supabase Auth from the
	// browser, so the project's origin joins the UI's connect-src.
	opts := ui.Options{Path: cfg.UI.Path}
	if cfg.UI.SupabasePublishableKey != "" {
		opts.SupabaseURL = cfg.Supabase.URL
	}
	h, err := ui.Handler(opts)
	if err != nil {
		return fmt.Errorf("ui.path: %w", err)
	}
	mount(cfg.UI.Path, h)
	mount("GET /{$}", http.RedirectHandler(cfg.UI.Path, http.StatusFound))
	return nil
}
