package api

import (
	"context"
	"net/http"
	"time"

	"github.com/meshhook/meshhook-alerts/supabase"
)

// DefaultSuccessWindow is the window of the delivery success rate when
// Status.SuccessWindow is zero.
const DefaultSuccessWindow = time.Hour

// Status supplies the numbers GET /api/status reports; main wires the
// providers. A nil Realtime or Rules provider reports its section as null.
//
// Daemon-wide figures are for the operator. A user sees whether Realtime
// is subscribed (not its channels, times or errors), the rule-cache counts
// of the rules row-level security lets them see, and their own alerts.
type Status struct {
	// Realtime reports the daemon's Realtime connection.
	Realtime func() RealtimeStatus
	// Rules reports the daemon's whole rule cache (the operator's view).
	Rules func() RulesStatus
	// Reconcile reports the daemon's reconciliation (the operator's
	// view); nil reports it as null.
	Reconcile func() ReconcileStatus
	// RulesOf reports the rule cache's state of the rules with these ids
	// (a user's view: the ids of the rules they may see). Nil reports a
	// user's rules section as null.
	RulesOf func(ids []string) RulesStatus
	// Backlog counts alerts waiting for delivery. Nil counts them in
	// alert_logs as the caller, so a user counts only their projects' alerts.
	Backlog func(ctx context.Context) (Backlog, error)
	// Deliveries counts alerts completed since a time. Nil counts them in
	// alert_logs as the caller.
	Deliveries func(ctx context.Context, since time.Time) (Deliveries, error)
	// SuccessWindow is how far back the success rate looks. Defaults to
	// DefaultSuccessWindow.
	SuccessWindow time.Duration
}

// RealtimeStatus is the state of the Realtime connection.
type RealtimeStatus struct {
	// Subscribed is true while every channel's subscription is confirmed.
	Subscribed bool
	Channels   []ChannelStatus
	// LastEventAt is when the last change (or, failing that, frame) was
	// received; zero when none was.
	LastEventAt time.Time
	// LastError is the most recent connection or channel error, if any.
	LastError string
}

// ChannelStatus is one Realtime channel.
type ChannelStatus struct {
	Name  string
	State string
}

// ReconcileStatus is the state of the daemon's reconciliation of the runs
// table, which finds the changes Realtime missed.
type ReconcileStatus struct {
	// Held is whether this daemon holds the reconcile lease (of several
	// daemons one reconciles).
	Held bool
	// Lag is how far the reconcile cursor is behind the database's clock.
	Lag time.Duration
	// Found counts the alerts reconciliation found first: changes
	// Realtime missed.
	Found int64
	// LastError is the last pass's error, "" when it succeeded.
	LastError string
}

// RulesStatus is the state of the rule cache.
type RulesStatus struct {
	Loaded   int // rules in use
	Rejected int // rules the daemon refused (see each rule's problems)
}

// Backlog counts undelivered alerts.
type Backlog struct {
	Pending    int64 // waiting for their next attempt
	Delivering int64 // being attempted
}

// Deliveries counts finished alerts.
type Deliveries struct {
	Succeeded int64
	Failed    int64
}

type statusResponse struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Realtime is a *realtimeView for the operator, a *userRealtimeView
	// for a user, nil when not reported.
	Realtime any        `json:"realtime"`
	Rules    *rulesView `json:"rules"`
	// Reconcile is the operator's; null for a user.
	Reconcile  *reconcileView `json:"reconcile"`
	Backlog    backlogView    `json:"backlog"`
	Deliveries deliveriesView `json:"deliveries"`
	Caller     callerView     `json:"caller"`
}

type reconcileView struct {
	Held        bool    `json:"held"`
	LagSeconds  float64 `json:"lag_seconds"`
	FoundAlerts int64   `json:"found_alerts"`
	LastError   *string `json:"last_error"`
}

type realtimeView struct {
	Subscribed  bool          `json:"subscribed"`
	Channels    []channelView `json:"channels"`
	LastEventAt *time.Time    `json:"last_event_at"`
	LastError   *string       `json:"last_error"`
}

// userRealtimeView is what a user sees of the Realtime connection: whether
// alerts flow, without the daemon's channels, times or errors.
type userRealtimeView struct {
	Subscribed bool `json:"subscribed"`
}

type channelView struct {
	Name  string `json:"name"`
	State string `json:"state"`
}

type rulesView struct {
	Loaded   int `json:"loaded"`
	Rejected int `json:"rejected"`
}

type backlogView struct {
	Pending    int64 `json:"pending"`
	Delivering int64 `json:"delivering"`
}

type deliveriesView struct {
	WindowSeconds int64 `json:"window_seconds"`
	Succeeded     int64 `json:"succeeded"`
	Failed        int64 `json:"failed"`
	// SuccessRate is succeeded / (succeeded + failed); null when none finished.
	SuccessRate *float64 `json:"success_rate"`
}

// callerView says who the numbers are for.
type callerView struct {
	Operator bool    `json:"operator"`
	UserID   *string `json:"user_id"`
}

// getStatus answers GET /api/status.
func (a *API) getStatus(w http.ResponseWriter, r *http.Request, p *principal) error {
	now := a.opts.Now()
	st := a.opts.Status
	resp := statusResponse{GeneratedAt: now.UTC(), Caller: callerView{Operator: p.operator, UserID: optString(p.userID)}}
	ctx := p.ctx(r.Context())
	switch {
	case st.Realtime == nil:
	case p.operator:
		rs := st.Realtime()
		v := &realtimeView{Subscribed: rs.Subscribed, Channels: make([]channelView, 0, len(rs.Channels)),
			LastEventAt: optTime(rs.LastEventAt), LastError: optString(rs.LastError)}
		for _, c := range rs.Channels {
			v.Channels = append(v.Channels, channelView{Name: c.Name, State: c.State})
		}
		resp.Realtime = v
	default:
		resp.Realtime = &userRealtimeView{Subscribed: st.Realtime().Subscribed}
	}
	if p.operator && st.Reconcile != nil {
		rc := st.Reconcile()
		resp.Reconcile = &reconcileView{Held: rc.Held, LagSeconds: rc.Lag.Seconds(), FoundAlerts: rc.Found,
			LastError: optString(rc.LastError)}
	}
	switch {
	case p.operator && st.Rules != nil:
		rs := st.Rules()
		resp.Rules = &rulesView{Loaded: rs.Loaded, Rejected: rs.Rejected}
	case !p.operator && st.RulesOf != nil:
		ids, err := a.opts.Store.AlertConfigIDs(ctx, supabase.ConfigFilter{})
		if err != nil {
			return err
		}
		rs := st.RulesOf(ids)
		resp.Rules = &rulesView{Loaded: rs.Loaded, Rejected: rs.Rejected}
	}
	backlog := st.Backlog
	if backlog == nil {
		backlog = a.countBacklog
	}
	b, err := backlog(ctx)
	if err != nil {
		return err
	}
	resp.Backlog = backlogView{Pending: b.Pending, Delivering: b.Delivering}
	deliveries := st.Deliveries
	if deliveries == nil {
		deliveries = a.countDeliveries
	}
	d, err := deliveries(ctx, now.Add(-st.SuccessWindow))
	if err != nil {
		return err
	}
	resp.Deliveries = deliveriesView{WindowSeconds: int64(st.SuccessWindow / time.Second), Succeeded: d.Succeeded, Failed: d.Failed}
	if total := d.Succeeded + d.Failed; total > 0 {
		rate := float64(d.Succeeded) / float64(total)
		resp.Deliveries.SuccessRate = &rate
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// countBacklog counts pending and delivering alerts in alert_logs.
func (a *API) countBacklog(ctx context.Context) (Backlog, error) {
	var b Backlog
	var err error
	if b.Pending, err = a.opts.Store.CountAlerts(ctx, supabase.AlertFilter{Statuses: []supabase.AlertStatus{supabase.StatusPending}}); err != nil {
		return Backlog{}, err
	}
	if b.Delivering, err = a.opts.Store.CountAlerts(ctx, supabase.AlertFilter{Statuses: []supabase.AlertStatus{supabase.StatusDelivering}}); err != nil {
		return Backlog{}, err
	}
	return b, nil
}

// countDeliveries counts alerts that succeeded or failed since since.
func (a *API) countDeliveries(ctx context.Context, since time.Time) (Deliveries, error) {
	var d Deliveries
	var err error
	if d.Succeeded, err = a.opts.Store.CountAlerts(ctx, supabase.AlertFilter{
		Statuses: []supabase.AlertStatus{supabase.StatusSucceeded}, CompletedSince: since}); err != nil {
		return Deliveries{}, err
	}
	if d.Failed, err = a.opts.Store.CountAlerts(ctx, supabase.AlertFilter{
		Statuses: []supabase.AlertStatus{supabase.StatusFailed}, CompletedSince: since}); err != nil {
		return Deliveries{}, err
	}
	return d, nil
}
