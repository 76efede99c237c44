package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/internal/seal"
)

// scenario is the project, workflows and rules a chaos run works with.
type scenario struct {
	project    string
	workflows  map[string]string // slug → workflow id (the runs' workflows)
	rules      []RuleSpec
	thresholds Thresholds
}

// chaosRules cover every event, workflow-wide and project-wide, with two
// thresholds each; the last two must never fire (no runs of "ghost", and
// disabled).
func chaosRules() []RuleSpec {
	all := []string{evSucceeded, evFailed, evCanceled, evPaused, evDelayed, evStalled, evRecovered}
	return []RuleSpec{
		{Name: "terminal", Enabled: true, Events: []string{evSucceeded, evFailed, evCanceled}},
		{Name: "billing paused and failed", Slug: "billing", Enabled: true, Events: []string{evPaused, evFailed}},
		{Name: "delayed 3s", Enabled: true, Events: []string{evDelayed, evRecovered}, Delay: 3 * time.Second},
		{Name: "reports stalled 2s", Slug: "reports", Enabled: true, Events: []string{evStalled, evRecovered, evCanceled},
			Stall: 2 * time.Second},
		{Name: "billing timers", Slug: "billing", Enabled: true, Events: []string{evDelayed, evStalled, evRecovered, evSucceeded},
			Delay: 5 * time.Second, Stall: 4 * time.Second},
		{Name: "ghost everything", Slug: "ghost", Enabled: true, Events: all, Delay: time.Second, Stall: time.Second},
		{Name: "disabled everything", Enabled: false, Events: all, Delay: time.Second, Stall: time.Second},
	}
}

// setupScenario creates a project with workflows billing (two versions),
// reports and ghost, and the chaos rules sending to url signed with secret
// (both sealed with keyring).
func setupScenario(ctx context.Context, si *standin.StandIn, keyring *seal.Keyring, url, secret string) (*scenario, error) {
	sc := &scenario{workflows: map[string]string{}, thresholds: Thresholds{Delay: 3 * time.Second, Stall: 2 * time.Second}}
	if err := si.Pool.QueryRow(ctx, `insert into projects (owner, name) values (gen_random_uuid(), 'chaos') returning id`).
		Scan(&sc.project); err != nil {
		return nil, fmt.Errorf("chaos: create project: %w", err)
	}
	for _, wf := range []struct {
		slug    string
		version int
	}{{"billing", 1}, {"billing", 2}, {"reports", 1}, {"ghost", 1}} {
		var id string
		if err := si.Pool.QueryRow(ctx, `insert into workflow_definitions (project_id, slug, version, definition, name)
			values ($1, $2, $3, '{}', $2) returning id`, sc.project, wf.slug, wf.version).Scan(&id); err != nil {
			return nil, fmt.Errorf("chaos: create workflow %s v%d: %w", wf.slug, wf.version, err)
		}
		if wf.slug != "ghost" {
			sc.workflows[fmt.Sprintf("%s/v%d", wf.slug, wf.version)] = id
		}
	}
	sealedURL, err := keyring.Seal(url)
	if err != nil {
		return nil, fmt.Errorf("chaos: seal url: %w", err)
	}
	sealedSecret, err := keyring.Seal(secret)
	if err != nil {
		return nil, fmt.Errorf("chaos: seal secret: %w", err)
	}
	for _, r := range chaosRules() {
		var slug *string
		if r.Slug != "" {
			slug = &r.Slug
		}
		var delay, stall *int
		if r.Delay > 0 {
			d := int(r.Delay / time.Second)
			delay = &d
		}
		if r.Stall > 0 {
			s := int(r.Stall / time.Second)
			stall = &s
		}
		if err := si.Pool.QueryRow(ctx, `insert into alert_configs (project_id, workflow_slug, name, enabled, events,
			delay_threshold_seconds, stall_threshold_seconds, webhook_url, signing_secrets)
			values ($1, $2, $3, $4, $5, $6, $7, $8, array[$9]) returning id`,
			sc.project, slug, r.Name, r.Enabled, r.Events, delay, stall, sealedURL, sealedSecret).Scan(&r.ID); err != nil {
			return nil, fmt.Errorf("chaos: create rule %q: %w", r.Name, err)
		}
		sc.rules = append(sc.rules, r)
	}
	return sc, nil
}

// busyAlerts counts the scenario's alerts not finished yet.
func (sc *scenario) busyAlerts(ctx context.Context, si *standin.StandIn) (int, error) {
	var n int
	err := si.Pool.QueryRow(ctx, `select count(*) from alert_logs where project_id = $1 and status in ('pending', 'delivering')`,
		sc.project).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("chaos: count pending alerts: %w", err)
	}
	return n, nil
}

// alertLogs reads every alert_logs row of the scenario's rules.
func (sc *scenario) alertLogs(ctx context.Context, si *standin.StandIn) ([]logRow, error) {
	ids := make([]string, len(sc.rules))
	for i, r := range sc.rules {
		ids[i] = r.ID
	}
	rows, err := si.Pool.Query(ctx, `select config_id::text, run_id, event, webhook_id, status, coalesce(outcome_reason, ''), coalesce(last_error, '') from alert_logs
		where config_id = any($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("chaos: read alert_logs: %w", err)
	}
	defer rows.Close()
	var out []logRow
	for rows.Next() {
		var l logRow
		if err := rows.Scan(&l.Key.Rule, &l.Key.Run, &l.Key.Event, &l.WebhookID, &l.Status, &l.Reason, &l.LastError); err != nil {
			return nil, fmt.Errorf("chaos: read alert_logs: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chaos: read alert_logs: %w", err)
	}
	return out, nil
}

// daemonEnv is the daemon's configuration: the stand-in behind the fault
// proxy, small timeouts and retry schedule so faults resolve within a run,
// and the default reconciliation and resync intervals.
func daemonEnv(supabaseURL, serviceRoleKey, encryptionKey string) []string {
	return []string{
		"MESHHOOK_ALERTS_SUPABASE_URL=" + supabaseURL,
		"MESHHOOK_ALERTS_SUPABASE_SERVICE_ROLE_KEY=" + serviceRoleKey,
		"MESHHOOK_ALERTS_SUPABASE_REQUEST_TIMEOUT=3s",
		"MESHHOOK_ALERTS_SECRETS_ENCRYPTION_KEY=" + encryptionKey,
		"MESHHOOK_ALERTS_SENDER_ALLOW_INSECURE_HTTP=true",
		"MESHHOOK_ALERTS_SENDER_ALLOWED_NETWORKS=127.0.0.0/8",
		"MESHHOOK_ALERTS_SENDER_REQUEST_TIMEOUT=" + attemptTimeout.String(),
		"MESHHOOK_ALERTS_SENDER_LEASE=3s",
		"MESHHOOK_ALERTS_SENDER_RETRY_INITIAL=200ms",
		"MESHHOOK_ALERTS_SENDER_RETRY_MAX=1s",
		"MESHHOOK_ALERTS_SENDER_POLL_INTERVAL=100ms",
		"MESHHOOK_ALERTS_SENDER_CIRCUIT_COOLDOWN=500ms",
		"MESHHOOK_ALERTS_REALTIME_RECONNECT_INITIAL=100ms",
		"MESHHOOK_ALERTS_REALTIME_RECONNECT_MAX=1s",
		"MESHHOOK_ALERTS_ALERTS_TIMER_TICK=200ms",
		"MESHHOOK_ALERTS_HTTP_LISTEN=127.0.0.1:0",
		"MESHHOOK_ALERTS_LOG_LEVEL=info",
	}
}

func newRand(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }
