-- meshhook-alerts: cheaper writes on the delivery path.
--
-- Every alert is updated at least twice (leased or claimed, then its
-- outcome), so per-row costs on alert_logs add up:
--
-- * The updated_at trigger ran a PL/pgSQL function for every updated row.
--   It now runs only when an UPDATE leaves updated_at as it was; the
--   daemon's functions set updated_at = now() themselves, which is what the
--   trigger would have done.
-- * alert_report_deliveries inserted the attempts first: each insert's
--   foreign key check locked its alert_logs row (a heap write and a WAL
--   record per row) just before the same row was updated. It now updates
--   first; the check then finds the row already locked by the update.
--
-- Behaviour is unchanged. Safe to run more than once.

create or replace trigger alert_logs_set_updated_at
  before update on public.alert_logs
  for each row
  when (new.updated_at is not distinct from old.updated_at)
  execute function public.alert_set_updated_at();

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
  )
  select coalesce(jsonb_agg(id), '[]'::jsonb) into applied from changed;

  insert into public.alert_attempts
    (alert_id, attempt, started_at, latency_ms, status_code, error, response_excerpt, outcome)
  select a.alert_id, a.attempt, a.started_at, a.latency_ms, a.status_code, a.error, a.response_excerpt, a.outcome
    from jsonb_to_recordset(coalesce(p_attempts, '[]'::jsonb)) as a(
           alert_id uuid, attempt integer, started_at timestamptz, latency_ms integer,
           status_code integer, error text, response_excerpt text, outcome text)
    join public.alert_logs l on l.id = a.alert_id -- an alert deleted meanwhile takes its attempts along
  on conflict (alert_id, attempt) do nothing;

  return applied;
end;
$$;

notify pgrst, 'reload schema';
