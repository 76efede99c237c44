-- meshhook-alerts: destinations (Slack, Discord, Teams, Google Chat,
-- PagerDuty) and "resolved after a failure".
--
-- alert_configs.destination   where a rule's alerts go: 'webhook' (the
--                             signed default payload, as before) or a
--                             vendor preset whose body the daemon builds
-- alert_configs.routing_key   a pagerduty rule's Events API v2 routing key,
--                             a sealed envelope like every secret
-- alert_configs.events        may list 'resolved' (with 'failed')
-- alert_logs.resolved_at,     on a failed alert: when, and by which
-- alert_logs.resolved_by      resolved alert, it was resolved
--
-- alert_claim_resolve(p_alert)
--   Claims one resolved alert (an alert_logs row as for alert_claim, event
--   'resolved') only while the rule has a failed alert for the same
--   workflow that is not resolved yet, not suppressed, not newer than the
--   success and at most 7 days older than it, and marks every such failed
--   alert resolved by it, in one statement. The workflow is matched as
--   coalesce(workflow_slug, ''), as the daemon's PagerDuty dedup_key does
--   (a failure without a workflow is resolved by a success without one).
--   The 7 days keep a rule that starts listing 'resolved' from resolving
--   failures of months ago. The failed alerts are locked first: a concurrent claim for
--   another success of the workflow waits, then finds them resolved and
--   claims nothing. So one failure (or a run of them) gets exactly one
--   resolved alert, whatever the number of daemons, restarts and re-reads;
--   a repeated call for the same run conflicts on the claim key.
--   Returns {id, config_id, run_id, event, status, next_attempt_at,
--   resolved} for a claimed alert (resolved: the failed alerts it
--   resolved), or {} when there was nothing to resolve.
--
-- Existing rules become 'webhook' rules. Adding the columns rewrites
-- nothing (a constant default, nullable columns). Safe to run more than
-- once.

alter table public.alert_configs
  add column if not exists destination text not null default 'webhook',
  add column if not exists routing_key text;

alter table public.alert_configs drop constraint if exists alert_configs_destination_check;
alter table public.alert_configs
  add constraint alert_configs_destination_check
  check (destination in ('webhook', 'slack', 'discord', 'teams', 'googlechat', 'pagerduty'));

alter table public.alert_configs drop constraint if exists alert_configs_routing_key_check;
alter table public.alert_configs
  add constraint alert_configs_routing_key_check
  check ((destination = 'pagerduty') = (routing_key is not null));

alter table public.alert_configs drop constraint if exists alert_configs_events_check;
alter table public.alert_configs
  add constraint alert_configs_events_check check (
    cardinality(events) > 0
    and array_position(events, null) is null
    and events <@ array['succeeded', 'failed', 'canceled', 'paused', 'delayed', 'stalled', 'recovered',
                        'resolved']::text[]
  );

comment on column public.alert_configs.destination is
  'webhook (signed default payload) or a preset: slack, discord, teams, googlechat, pagerduty';
comment on column public.alert_configs.routing_key is
  'pagerduty only: the Events API v2 routing key, a sealed envelope (mhsealed:v1:...)';

alter table public.alert_logs
  add column if not exists resolved_at timestamptz,
  add column if not exists resolved_by uuid;

comment on column public.alert_logs.resolved_at is
  'failed alerts: when a resolved alert of the same rule and workflow resolved it';
comment on column public.alert_logs.resolved_by is
  'failed alerts: the resolved alert (alert_logs.id) that resolved it';

-- The failed alerts a resolve looks for, by rule, workflow (as the resolve
-- matches it) and time, so that the lookup is one index range. Only
-- failed, unsuppressed alerts enter it, and they leave it when resolved.
-- (An earlier draft of this migration built alert_logs_open_failures_idx
-- on (config_id, workflow_slug), which the resolve's match cannot use.)
drop index if exists public.alert_logs_open_failures_idx;
create index if not exists alert_logs_unresolved_failures_idx
  on public.alert_logs (config_id, (coalesce(workflow_slug, '')), occurred_at)
  where event = 'failed' and resolved_at is null and status <> 'suppressed';

create or replace function public.alert_claim_resolve(p_alert jsonb)
returns jsonb
language sql
volatile
set search_path = pg_catalog, public
as $$
  with input as (
    select a.*
      from jsonb_to_record(p_alert) as a(
             config_id uuid, project_id uuid, workflow_slug text, run_id text, webhook_id text,
             payload text, target_url text, occurred_at timestamptz)
  ),
  open as materialized (
    select l.id
      from public.alert_logs l, input i
     where l.config_id = i.config_id
       and l.event = 'failed'
       and l.resolved_at is null
       and l.status <> 'suppressed'
       and coalesce(l.workflow_slug, '') = coalesce(i.workflow_slug, '')
       and l.occurred_at <= i.occurred_at
       and l.occurred_at >= i.occurred_at - interval '7 days'
       for update of l
  ),
  inserted as (
    insert into public.alert_logs (config_id, project_id, workflow_slug, run_id, event, webhook_id,
                                   status, next_attempt_at, payload, target_url, occurred_at)
    select config_id, project_id, workflow_slug, run_id, 'resolved', webhook_id,
           'pending', now(), payload, target_url, occurred_at
      from input
     where exists (select 1 from open)
    on conflict do nothing
    returning id, config_id, run_id, event, status, next_attempt_at
  ),
  marked as (
    update public.alert_logs l
       set resolved_at = now(), resolved_by = ins.id
      from inserted ins
     where l.id in (select id from open)
    returning l.id
  )
  select coalesce((select jsonb_build_object(
           'id', id, 'config_id', config_id, 'run_id', run_id, 'event', event,
           'status', status, 'next_attempt_at', next_attempt_at,
           'resolved', (select count(*) from marked))
           from inserted), '{}'::jsonb)
$$;

comment on function public.alert_claim_resolve(jsonb) is
  'meshhook-alerts: claim one resolved alert if the rule has an unresolved failed alert for the workflow, resolving it (service role only)';

revoke all on function public.alert_claim_resolve(jsonb) from public, anon, authenticated;
grant execute on function public.alert_claim_resolve(jsonb) to service_role;

notify pgrst, 'reload schema';
