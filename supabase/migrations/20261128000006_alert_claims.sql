-- meshhook-alerts: claim many alerts in one call.
--
-- alert_claim(p_alerts)
--   Inserts each alert of p_alerts (a JSON array of alert_logs rows: config_id,
--   project_id, workflow_slug, run_id, event, webhook_id, status,
--   next_attempt_at, payload, target_url, occurred_at, outcome_reason,
--   completed_at) unless it is already claimed: ON CONFLICT DO NOTHING on
--   every unique key, so a claim racing an identical one (same claim key and
--   webhook_id) is skipped, never an error. Alerts of rules deleted meanwhile
--   are skipped too. An alert given as delivering, with next_attempt_at its
--   lease expiry, is inserted already leased to the caller, which can send it
--   without a separate lease call; a pending alert without next_attempt_at is
--   due at once.
--   Returns the inserted alerts as a JSON array of
--   {id, config_id, run_id, event, status, next_attempt_at}; an alert missing
--   from it was claimed before.
--
-- Called over PostgREST (/rest/v1/rpc/alert_claim) by the service role only.
-- Safe to run more than once.

create or replace function public.alert_claim(p_alerts jsonb)
returns jsonb
language sql
volatile
set search_path = pg_catalog, public
as $$
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
    from inserted
$$;

comment on function public.alert_claim(jsonb) is
  'meshhook-alerts: claim alerts in one call, skipping those already claimed (service role only)';

-- Supabase grants EXECUTE on new functions in public to anon and
-- authenticated; claims are the daemon's alone.
revoke all on function public.alert_claim(jsonb) from public, anon, authenticated;
grant execute on function public.alert_claim(jsonb) to service_role;

notify pgrst, 'reload schema';
