package main

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// abandonBlackhole fails the alerts still waiting for the blackholed
// endpoint once the isolation phase has measured what it measures: they
// would go on retrying for hours, and every later phase first waits until
// no alert is pending or being delivered. (A sender still holding one
// reports against a lease that no longer matches, so nothing is undone.)
func abandonBlackhole(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, `update alert_logs
		set status = 'failed', outcome_reason = 'bench_abandoned', completed_at = now(), next_attempt_at = null
		where workflow_slug = 'blackholed' and status in ('pending', 'delivering')`)
	return err
}
