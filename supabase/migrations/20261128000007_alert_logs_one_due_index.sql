-- meshhook-alerts: one index for due alerts, not two.
--
-- alert_logs_due_idx (status, next_attempt_at) and alert_logs_lease_idx
-- (next_attempt_at, id) cover the same rows (status pending or delivering).
-- Every query that finds due alerts (leasing, the due list, the pending
-- backlog) filters on a status inside that predicate and orders by
-- next_attempt_at, which alert_logs_lease_idx serves; the second index only
-- cost an index insert on every claim and every status change.
--
-- Safe to run more than once.

drop index if exists public.alert_logs_due_idx;

notify pgrst, 'reload schema';
