-- meshhook-alerts: delivery leases and batched outcome writes.
--
-- Senders (one or more daemons) take alerts for delivery with a lease and
-- record outcomes in batches, through two functions called over PostgREST
-- (/rest/v1/rpc/...) by the service role only:
--
-- alert_lease_due(p_now, p_until, p_limit)
--   Atomically takes up to p_limit alerts that are due at p_now — pending
--   with next_attempt_at <= p_now, or delivering with an expired lease (the
--   daemon that held it stopped) — and marks them delivering with
--   next_attempt_at = p_until (the lease expiry). FOR UPDATE SKIP LOCKED: two
--   daemons never take the same alert. An expired lease is recorded as an
--   "interrupted" attempt (the receiver may or may not have got it) and
--   counted. Returns the leased alert_logs rows.
--
-- alert_report_deliveries(p_attempts, p_updates)
--   Records a batch of attempts (idempotent on (alert_id, attempt)) and
--   applies each alert update only while the alert is still delivering under
--   the caller's lease (a compare-and-set on next_attempt_at), or already
--   shows the update (a retried call). Returns the ids whose update applied,
--   as a JSON array.
--
-- Safe to run more than once.

-- Leasing takes the earliest due alerts first: an index in that order lets
-- it stop after p_limit rows instead of sorting every due alert.
create index if not exists alert_logs_lease_idx
  on public.alert_logs (next_attempt_at, id)
  where status in ('pending', 'delivering');

create or replace function public.alert_lease_due(p_now timestamptz, p_until timestamptz, p_limit integer)
returns setof public.alert_logs
language plpgsql
volatile
set search_path = pg_catalog, public
as $fn$
begin
  -- Dynamic SQL is planned with the actual arguments on every call, so the
  -- planner sees how small p_limit is and walks alert_logs_lease_idx.
  return query execute $q$
    with due as (
      select id, status, attempts, next_attempt_at
        from public.alert_logs
       where status in ('pending', 'delivering')
         and next_attempt_at <= $1
       order by next_attempt_at, id
       limit greatest($3, 0)
         for update skip locked
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
           outcome_reason = case when due.status = 'delivering' then 'interrupted' else l.outcome_reason end
      from due
     where l.id = due.id
    returning l.*
  $q$ using p_now, p_until, p_limit;
end;
$fn$;

comment on function public.alert_lease_due(timestamptz, timestamptz, integer) is
  'meshhook-alerts: lease due alerts for delivery (service role only)';

create or replace function public.alert_report_deliveries(p_attempts jsonb, p_updates jsonb)
returns jsonb
language plpgsql
volatile
set search_path = pg_catalog, public
as $$
declare
  applied jsonb;
begin
  insert into public.alert_attempts
    (alert_id, attempt, started_at, latency_ms, status_code, error, response_excerpt, outcome)
  select a.alert_id, a.attempt, a.started_at, a.latency_ms, a.status_code, a.error, a.response_excerpt, a.outcome
    from jsonb_to_recordset(coalesce(p_attempts, '[]'::jsonb)) as a(
           alert_id uuid, attempt integer, started_at timestamptz, latency_ms integer,
           status_code integer, error text, response_excerpt text, outcome text)
    join public.alert_logs l on l.id = a.alert_id -- an alert deleted meanwhile takes its attempts along
  on conflict (alert_id, attempt) do nothing;

  with changed as (
    update public.alert_logs l
       set status = u.status,
           attempts = u.attempts,
           next_attempt_at = u.next_attempt_at,
           outcome_reason = coalesce(u.outcome_reason, l.outcome_reason),
           completed_at = u.completed_at,
           last_status_code = case when u.set_last then u.last_status_code else l.last_status_code end,
           last_error = case when u.set_last then u.last_error else l.last_error end
      from jsonb_to_recordset(coalesce(p_updates, '[]'::jsonb)) as u(
             id uuid, lease timestamptz, status text, attempts integer, next_attempt_at timestamptz,
             outcome_reason text, completed_at timestamptz, set_last boolean,
             last_status_code integer, last_error text)
     where l.id = u.id
       and ((l.status = 'delivering' and l.next_attempt_at = u.lease)
            or (l.status = u.status and l.attempts = u.attempts
                and l.next_attempt_at is not distinct from u.next_attempt_at))
    returning l.id
  )
  select coalesce(jsonb_agg(id), '[]'::jsonb) into applied from changed;
  return applied;
end;
$$;

comment on function public.alert_report_deliveries(jsonb, jsonb) is
  'meshhook-alerts: record delivery attempts and outcomes in one batch (service role only)';

-- Supabase grants EXECUTE on new functions in public to anon and
-- authenticated by default; these are for the daemon only.
revoke all on function public.alert_lease_due(timestamptz, timestamptz, integer) from public, anon, authenticated;
revoke all on function public.alert_report_deliveries(jsonb, jsonb) from public, anon, authenticated;
grant execute on function public.alert_lease_due(timestamptz, timestamptz, integer) to service_role;
grant execute on function public.alert_report_deliveries(jsonb, jsonb) to service_role;

notify pgrst, 'reload schema';
