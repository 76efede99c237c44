-- meshhook-alerts: a resolved alert is delivered after the failed alerts it
-- resolved, never before or beside them.
--
-- alert_claim_resolve inserts a resolved alert pending and due at once,
-- while a failed alert it resolves may still be on its way: in retry
-- backoff after a 429, 5xx or timeout, or being delivered in the same
-- burst. Sent first, PagerDuty drops a resolve for an incident it does not
-- have yet, and the trigger retried later opens an incident nothing
-- closes; a chat shows "resolved" above "failed".
--
-- alert_lease_due(p_now, p_until, p_limit)
--   Same arguments and result as in 20261210000001_alert_cheaper_calls.sql
--   (copied from there), and it leases no resolved alert while any failed
--   alert it resolved (alert_logs.resolved_by) is pending or delivering. The
--   resolved alert stays pending and due, and is leased by the first poll
--   after the last of them is delivered or given up (a failed alert that
--   ends failed still had its attempts; its resolve then follows). This
--   holds as well when a failed alert is redelivered: it is pending again,
--   and a resolve made pending again waits for it.
--   The "anything due?" look tests the same condition, so a resolve held
--   back this way does not make every poll plan the leasing statement.
--   Cost: for a due row whose event is not 'resolved', nothing more than
--   reading its event from the row already visited; for a due resolved
--   alert, one probe of alert_logs_resolving_idx, which holds only failed
--   alerts that are resolved and still pending or delivering (usually
--   none). An idle poll (nothing due) is unchanged.
--
-- Safe to run more than once.

-- The failed alerts a resolved alert waits for: resolved already, not yet
-- delivered. Rows enter it only while both hold, so it stays tiny.
create index if not exists alert_logs_resolving_idx
  on public.alert_logs (resolved_by)
  where resolved_by is not null and status in ('pending', 'delivering');

create or replace function public.alert_lease_due(p_now timestamptz, p_until timestamptz, p_limit integer)
returns setof public.alert_logs
language plpgsql
volatile
set search_path = pg_catalog, public
as $fn$
begin
  if not exists (select 1 from public.alert_logs l
                  where l.status in ('pending', 'delivering') and l.next_attempt_at <= p_now
                    and (l.event <> 'resolved'
                         or not exists (select 1 from public.alert_logs f
                                         where f.resolved_by = l.id and f.status in ('pending', 'delivering')))) then
    return;
  end if;
  -- Dynamic SQL is planned with the actual arguments on every call, so the
  -- planner sees how small p_limit is and walks alert_logs_lease_idx.
  return query execute $q$
    with due as (
      select l.id, l.status, l.attempts, l.next_attempt_at
        from public.alert_logs l
       where l.status in ('pending', 'delivering')
         and l.next_attempt_at <= $1
         and (l.event <> 'resolved'
              or not exists (select 1 from public.alert_logs f
                              where f.resolved_by = l.id and f.status in ('pending', 'delivering')))
       order by l.next_attempt_at, l.id
       limit greatest($3, 0)
         for update of l skip locked
    ),
    interrupted as (
      insert into public.alert_attempts (alert_id, attempt, started_at, outcome, error)
      select id, attempts + 1, next_attempt_at - ($2 - $1), 'interrupted',
             'the daemon making this attempt stopped before recording its outcome (lease expired); the receiver may have received it'
        from due
       where status = 'delivering'
      on conflict (alert_id, attempt) do nothing
    )
    update public.alert_logs l
       set status = 'delivering',
           next_attempt_at = $2,
           attempts = case when due.status = 'delivering' then l.attempts + 1 else l.attempts end,
           outcome_reason = case when due.status = 'delivering' then 'interrupted' else l.outcome_reason end,
           updated_at = now()
      from due
     where l.id = due.id
    returning l.*
  $q$ using p_now, p_until, p_limit;
end;
$fn$;

notify pgrst, 'reload schema';
