package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/logging"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// DefaultSuccessWindow is the window of the delivery success rate when
// Status.SuccessWindow is zero.
const DefaultSuccessWindow = time.Hour

// DefaultDatabaseTimeout bounds the database counts of GET /api/status when
// Status.DatabaseTimeout is zero.
const DefaultDatabaseTimeout = 2 * time.Second

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
	// Circuits reports the sender's per-endpoint circuit breakers (the
	// operator's view); nil reports them as null.
	Circuits func() []sender.Circuit
	// RejectedRules reports the rules the daemon refused, by id, with why
	// (the operator's view: every rule; a user sees those among their own
	// rules). Nil lists none.
	RejectedRules func() map[string]string
	// DatabaseTimeout bounds the database counts (backlog and deliveries,
	// and a user's rule ids), so that the daemon-local parts are answered
	// quickly while the database is unreachable. Defaults to
	// DefaultDatabaseTimeout.
	DatabaseTimeout time.Duration
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
	Retrying   int64 // of those, alerts with at least one failed attempt
	Delivering int64 // being attempted
	// OldestPendingAt is when the oldest pending alert was created; zero
	// when none is pending.
	OldestPendingAt time.Time
}

// Deliveries counts finished alerts.
type Deliveries struct {
	Succeeded  int64
	Failed     int64 // gave up: attempts exhausted or refused for good
	Suppressed int64 // throttled, never sent
}

type statusResponse struct {
	GeneratedAt time.Time `json:"generated_at"`
	// Realtime is a *realtimeView for the operator, a *userRealtimeView
	// for a user, nil when not reported.
	Realtime any        `json:"realtime"`
	Rules    *rulesView `json:"rules"`
	// Reconcile is the operator's; null for a user.
	Reconcile *reconcileView `json:"reconcile"`
	// Database says whether the counts below could be read.
	Database databaseView `json:"database"`
	// Backlog and Deliveries are null while the database is unreachable.
	Backlog    *backlogView    `json:"backlog"`
	Deliveries *deliveriesView `json:"deliveries"`
	// Circuits is the operator's; null for a user.
	Circuits []circuitView `json:"circuits"`
	Caller   callerView    `json:"caller"`
}

type databaseView struct {
	Reachable bool    `json:"reachable"`
	Error     *string `json:"error"`
}

type circuitView struct {
	Target              string     `json:"target"`
	EndpointID          string     `json:"endpoint_id"`
	State               string     `json:"state"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	OpenUntil           *time.Time `json:"open_until"`
}

type rejectedRuleView struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
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
	// RejectedRules says which rules were refused and why.
	RejectedRules []rejectedRuleView `json:"rejected_rules"`
}

type backlogView struct {
	Pending                 int64      `json:"pending"`
	Retrying                int64      `json:"retrying"`
	Delivering              int64      `json:"delivering"`
	OldestPendingAt         *time.Time `json:"oldest_pending_at"`
	OldestPendingAgeSeconds *float64   `json:"oldest_pending_age_seconds"`
}

type deliveriesView struct {
	WindowSeconds int64 `json:"window_seconds"`
	Succeeded     int64 `json:"succeeded"`
	Failed        int64 `json:"failed"`
	Suppressed    int64 `json:"suppressed"`
	// SuccessRate is succeeded / (succeeded + failed); null when none finished.
	SuccessRate *float64 `json:"success_rate"`
}

// callerView says who the numbers are for.
type callerView struct {
	Operator bool    `json:"operator"`
	UserID   *string `json:"user_id"`
}

// getStatus answers GET /api/status. The daemon-local parts (Realtime,
// reconciliation, the rule cache, circuits) are always answered; the
// database counts are bounded by Status.DatabaseTimeout and, when the
// database does not answer in time, reported as unreachable.
func (a *API) getStatus(w http.ResponseWriter, r *http.Request, p *principal) error {
	now := a.opts.Now()
	st := a.opts.Status
	resp := statusResponse{GeneratedAt: now.UTC(), Caller: callerView{Operator: p.operator, UserID: optString(p.userID)},
		Database: databaseView{Reachable: true}}
	timeout := st.DatabaseTimeout
	if timeout <= 0 {
		timeout = DefaultDatabaseTimeout
	}
	ctx, cancel := context.WithTimeout(p.ctx(r.Context()), timeout)
	defer cancel()
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
	if p.operator && st.Circuits != nil {
		resp.Circuits = []circuitView{}
		for _, c := range st.Circuits() {
			resp.Circuits = append(resp.Circuits, circuitView{Target: c.Target, EndpointID: c.EndpointID, State: c.State,
				ConsecutiveFailures: c.Failures, OpenUntil: optTime(c.OpenUntil)})
		}
	}

	// The database counts run side by side, each bounded by ctx.
	var (
		wg      sync.WaitGroup
		ids     []string
		idsErr  error
		b       Backlog
		bErr    error
		d       Deliveries
		dErr    error
		backlog = st.Backlog
		deliv   = st.Deliveries
	)
	if backlog == nil {
		backlog = a.countBacklog
	}
	if deliv == nil {
		deliv = a.countDeliveries
	}
	wg.Add(2)
	go func() { defer wg.Done(); b, bErr = backlog(ctx) }()
	go func() { defer wg.Done(); d, dErr = deliv(ctx, now.Add(-st.SuccessWindow)) }()
	if !p.operator && (st.RulesOf != nil || st.RejectedRules != nil) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids, idsErr = a.opts.Store.AlertConfigIDs(ctx, supabase.ConfigFilter{})
		}()
	}
	wg.Wait()

	var rejected map[string]string
	if st.RejectedRules != nil {
		rejected = st.RejectedRules()
	}
	switch {
	case p.operator && st.Rules != nil:
		rs := st.Rules()
		resp.Rules = &rulesView{Loaded: rs.Loaded, Rejected: rs.Rejected, RejectedRules: rejectedList(rejected, nil)}
	case !p.operator && st.RulesOf != nil && idsErr == nil:
		rs := st.RulesOf(ids)
		resp.Rules = &rulesView{Loaded: rs.Loaded, Rejected: rs.Rejected, RejectedRules: rejectedList(rejected, ids)}
	}
	if bErr == nil {
		resp.Backlog = &backlogView{Pending: b.Pending, Retrying: b.Retrying, Delivering: b.Delivering,
			OldestPendingAt: optTime(b.OldestPendingAt)}
		if !b.OldestPendingAt.IsZero() {
			age := max(now.Sub(b.OldestPendingAt), 0).Seconds()
			resp.Backlog.OldestPendingAgeSeconds = &age
		}
	}
	if dErr == nil {
		resp.Deliveries = &deliveriesView{WindowSeconds: int64(st.SuccessWindow / time.Second),
			Succeeded: d.Succeeded, Failed: d.Failed, Suppressed: d.Suppressed}
		if total := d.Succeeded + d.Failed; total > 0 {
			rate := float64(d.Succeeded) / float64(total)
			resp.Deliveries.SuccessRate = &rate
		}
	}
	if err := errors.Join(bErr, dErr, idsErr); err != nil {
		resp.Database.Reachable = false
		why := "the database did not answer"
		switch {
		case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
			why = fmt.Sprintf("the database did not answer within %s", timeout)
		case p.operator:
			why = "the database could not be read: " + logging.RedactError(err)
		}
		resp.Database.Error = &why
		a.log.Info("status: database counts unavailable", zap.Error(err))
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// rejectedList lists the rejected rules, by id, keeping only those in ids
// when ids is not nil.
func rejectedList(rejected map[string]string, ids []string) []rejectedRuleView {
	out := []rejectedRuleView{}
	if ids != nil {
		for _, id := range ids {
			if why, ok := rejected[id]; ok {
				out = append(out, rejectedRuleView{ID: id, Reason: why})
			}
		}
	} else {
		for id, why := range rejected {
			out = append(out, rejectedRuleView{ID: id, Reason: why})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// countBacklog counts pending (and of those, retrying) and delivering
// alerts in alert_logs, and finds the oldest pending one.
func (a *API) countBacklog(ctx context.Context) (Backlog, error) {
	var b Backlog
	var err error
	pending := []supabase.AlertStatus{supabase.StatusPending}
	if b.Pending, err = a.opts.Store.CountAlerts(ctx, supabase.AlertFilter{Statuses: pending}); err != nil {
		return Backlog{}, err
	}
	if b.Pending > 0 {
		if b.Retrying, err = a.opts.Store.CountAlerts(ctx, supabase.AlertFilter{Statuses: pending, MinAttempts: 1}); err != nil {
			return Backlog{}, err
		}
		oldest, err := a.opts.Store.OldestAlert(ctx, supabase.AlertFilter{Statuses: pending})
		if err != nil {
			return Backlog{}, err
		}
		if oldest != nil {
			b.OldestPendingAt = oldest.CreatedAt
		}
	}
	if b.Delivering, err = a.opts.Store.CountAlerts(ctx, supabase.AlertFilter{Statuses: []supabase.AlertStatus{supabase.StatusDelivering}}); err != nil {
		return Backlog{}, err
	}
	return b, nil
}

// countDeliveries counts alerts that succeeded, failed or were suppressed
// since since.
func (a *API) countDeliveries(ctx context.Context, since time.Time) (Deliveries, error) {
	var d Deliveries
	for _, c := range []struct {
		status supabase.AlertStatus
		n      *int64
	}{{supabase.StatusSucceeded, &d.Succeeded}, {supabase.StatusFailed, &d.Failed}, {supabase.StatusSuppressed, &d.Suppressed}} {
		n, err := a.opts.Store.CountAlerts(ctx, supabase.AlertFilter{Statuses: []supabase.AlertStatus{c.status}, CompletedSince: since})
		if err != nil {
			return Deliveries{}, err
		}
		*c.n = n
	}
	return d, nil
}
