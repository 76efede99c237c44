-- meshhook-alerts: cheaper calls on the common path (issue 18, "cost per
-- alert in the user's database").
--
-- alert_claim(p_alerts)
--   Same arguments, result and settings; now PL/pgSQL instead of SQL. A SQL
--   function that cannot be inlined (it writes) is parsed and planned on
--   every call; PL/pgSQL keeps the plan of its statement for the session.
--   Measured with `go run ./scripts/benchpipe -phases idle,steady,burst`,
--   see docs/benchmarks.md ("Cost per alert in the database").
--
-- alert_lease_due(p_now, p_until, p_limit)
--   Same arguments and result. It first looks, through
--   alert_logs_lease_idx and with a plan kept for the session, whether
--   anything is due at all, and returns at once when nothing is: the
--   common case, since the daemon leases live alerts as it claims them and
--   polls every second. Only then does it plan its leasing statement with
--   the actual arguments (dynamic SQL, as before). A row that becomes due
--   just after the look is taken by the next poll.
--
-- alert_report_deliveries(p_attempts, p_updates)
--   Same arguments, result and settings; the outcomes and the attempts are
--   now written by one statement instead of two. The attempts are still
--   inserted whether or not their update applied (an attempt made by a
--   sender whose lease was taken over is still an attempt), for alerts
--   that exist, skipping ones already recorded.
--
-- Safe to run more than once.

create or replace function public.alert_claim(p_alerts jsonb)
returns jsonb
language plpgsql
volatile
set search_path = pg_catalog, public
set enable_hashjoin = off
set enable_mergejoin = off
set enable_seqscan = off
as $$
declare
  v_claimed jsonb;
begin
  with input as (
    select a.*
      from jsonb_to_recordset(coalesce(p_alerts, '[]'::jsonb)) as a(
             config_id uuid, project_id uuid, workflow_slug text, run_id text, event text,
             webhook_id text, status text, next_attempt_at timestamptz, payload text,
             target_url text, occurred_at timestamptz, outcome_reason text, completed_at timestamptz)
     where exists (select 1 from public.alert_configs c where c.id = a.config_id)
  ),
  inserted as (
    insert into public.alert_logs (config_id, project_id, workflow_slug, run_id, event, webhook_id,
                                   status, next_attempt_at, payload, target_url, occurred_at,
                                   outcome_reason, completed_at)
    select config_id, project_id, workflow_slug, run_id, event, webhook_id,
           coalesce(status, 'pending'),
           case when coalesce(status, 'pending') = 'pending' then coalesce(next_attempt_at, now()) else next_attempt_at end,
           payload, target_url, occurred_at, outcome_reason, completed_at
      from input
    on conflict do nothing
    returning id, config_id, run_id, event, status, next_attempt_at
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', id, 'config_id', config_id, 'run_id', run_id, 'event', event,
           'status', status, 'next_attempt_at', next_attempt_at)), '[]'::jsonb)
    into v_claimed
    from inserted;
  return v_claimed;
end;
$$;

create or replace function public.alert_lease_due(p_now timestamptz, p_until timestamptz, p_limit integer)
returns setof public.alert_logs
language plpgsql
volatile
set search_path = pg_catalog, public
as $fn$
begin
  if not exists (select 1 from public.alert_logs
                  where status in ('pending', 'delivering') and next_attempt_at <= p_now) then
    return;
  end if;
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
           outcome_reason = case when due.status = 'delivering' then 'interrupted' else l.outcome_reason end,
           updated_at = now()
      from due
     where l.id = due.id
    returning l.*
  $q$ using p_now, p_until, p_limit;
end;
$fn$;

create or replace function public.alert_report_deliveries(p_attempts jsonb, p_updates jsonb)
returns jsonb
language plpgsql
volatile
set search_path = pg_catalog, public
set enable_hashjoin = off
set enable_mergejoin = off
set enable_seqscan = off
as $$
declare
  applied jsonb;
begin
  with changed as (
    update public.alert_logs l
       set status = u.status,
           attempts = u.attempts,
           next_attempt_at = u.next_attempt_at,
           outcome_reason = coalesce(u.outcome_reason, l.outcome_reason),
           completed_at = u.completed_at,
           last_status_code = case when u.set_last then u.last_status_code else l.last_status_code end,
           last_error = case when u.set_last then u.last_error else l.last_error end,
           updated_at = now()
      from jsonb_to_recordset(coalesce(p_updates, '[]'::jsonb)) as u(
             id uuid, lease timestamptz, status text, attempts integer, next_attempt_at timestamptz,
             outcome_reason text, completed_at timestamptz, set_last boolean,
             last_status_code integer, last_error text)
     where l.id = u.id
       and ((l.status = 'delivering' and l.next_attempt_at = u.lease)
            or (l.status = u.status and l.attempts = u.attempts
                and l.next_attempt_at is not distinct from u.next_attempt_at))
    returning l.id
  ),
  recorded as (
    insert into public.alert_attempts
      (alert_id, attempt, started_at, latency_ms, status_code, error, response_excerpt, outcome)
    select a.alert_id, a.attempt, a.started_at, a.latency_ms, a.status_code, a.error, a.response_excerpt, a.outcome
      from jsonb_to_recordset(coalesce(p_attempts, '[]'::jsonb)) as a(
             alert_id uuid, attempt integer, started_at timestamptz, latency_ms integer,
             status_code integer, error text, response_excerpt text, outcome text)
     where exists (select 1 from public.alert_logs l where l.id = a.alert_id)
    on conflict (alert_id, attempt) do nothing
  )
  select coalesce(jsonb_agg(id), '[]'::jsonb) into applied from changed;
  return applied;
end;
$$;

notify pgrst, 'reload schema';
