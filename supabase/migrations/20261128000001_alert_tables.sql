-- meshhook-alerts: the alert tables.
--
-- alert_configs       one alert rule per row, owned by a MeshHook project
-- alert_logs          one row per alert (the claim); the durable record the
--                     sender works from, unique per (config, run, event)
-- alert_attempts      one row per delivery attempt
-- alert_daemon_state  small key/value store for the daemon (watermarks)
--
-- Applies on a Supabase project with or without MeshHook's tables: the
-- foreign key to public.projects and the run-table index are only added when
-- those tables exist. Safe to run more than once.

-- updated_at maintenance, independent of MeshHook's update_updated_at_column().
create or replace function public.alert_set_updated_at() returns trigger
language plpgsql as $$
begin
  new.updated_at = now();
  return new;
end;
$$;

create table if not exists public.alert_configs (
  id                      uuid primary key default gen_random_uuid(),
  project_id              uuid,
  workflow_slug           text,
  name                    text not null,
  enabled                 boolean not null default true,
  events                  text[] not null,
  delay_threshold_seconds integer,
  stall_threshold_seconds integer,
  webhook_url             text not null,
  signing_secrets         text[] not null default '{}',
  meshhook_signature      boolean not null default false,
  custom_headers          jsonb not null default '{}',
  payload_template        text,
  throttle_max            integer,
  throttle_window_seconds integer,
  disabled_reason         text,
  created_at              timestamptz not null default now(),
  updated_at              timestamptz not null default now(),
  constraint alert_configs_events_check check (
    cardinality(events) > 0
    and array_position(events, null) is null
    and events <@ array['succeeded', 'failed', 'canceled', 'paused', 'delayed', 'stalled', 'recovered']::text[]
  ),
  constraint alert_configs_delay_threshold_check check (delay_threshold_seconds > 0),
  constraint alert_configs_stall_threshold_check check (stall_threshold_seconds > 0),
  constraint alert_configs_throttle_max_check check (throttle_max > 0),
  constraint alert_configs_throttle_window_check check (throttle_window_seconds > 0),
  constraint alert_configs_custom_headers_check check (jsonb_typeof(custom_headers) = 'object')
);

comment on table public.alert_configs is
  'meshhook-alerts: alert rules; a rule with workflow_slug null covers the whole project';
comment on column public.alert_configs.webhook_url is
  'URL or URL template; may be a sealed envelope (mhsealed:v1:...)';
comment on column public.alert_configs.signing_secrets is
  'Standard Webhooks secrets (whsec_<base64>) or sealed envelopes; every one signs each delivery';
comment on column public.alert_configs.disabled_reason is
  'set by the daemon when it disables the rule (for example after 410 Gone)';

create index if not exists alert_configs_project_slug_idx
  on public.alert_configs (project_id, workflow_slug);

create table if not exists public.alert_logs (
  id               uuid primary key default gen_random_uuid(),
  config_id        uuid not null references public.alert_configs (id) on delete cascade,
  project_id       uuid,
  workflow_slug    text,
  run_id           text not null,
  event            text not null,
  webhook_id       text not null,
  status           text not null default 'pending',
  attempts         integer not null default 0,
  next_attempt_at  timestamptz,
  payload          text not null,
  target_url       text not null,
  occurred_at      timestamptz not null,
  last_status_code integer,
  last_error       text,
  outcome_reason   text,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now(),
  completed_at     timestamptz,
  constraint alert_logs_webhook_id_key unique (webhook_id),
  constraint alert_logs_claim_key unique (config_id, run_id, event),
  constraint alert_logs_status_check
    check (status in ('pending', 'delivering', 'succeeded', 'failed', 'suppressed')),
  constraint alert_logs_attempts_check check (attempts >= 0)
);

comment on table public.alert_logs is
  'meshhook-alerts: one row per alert; inserting it claims (config_id, run_id, event)';

create index if not exists alert_logs_due_idx
  on public.alert_logs (status, next_attempt_at)
  where status in ('pending', 'delivering');

create table if not exists public.alert_attempts (
  id               bigint generated always as identity primary key,
  alert_id         uuid not null references public.alert_logs (id) on delete cascade,
  attempt          integer not null,
  started_at       timestamptz not null,
  latency_ms       integer,
  status_code      integer,
  error            text,
  response_excerpt text,
  outcome          text not null,
  constraint alert_attempts_alert_attempt_key unique (alert_id, attempt),
  constraint alert_attempts_attempt_check check (attempt >= 0)
);

comment on table public.alert_attempts is 'meshhook-alerts: every delivery attempt of an alert';

create table if not exists public.alert_daemon_state (
  key        text primary key,
  value      jsonb not null,
  updated_at timestamptz not null default now()
);

comment on table public.alert_daemon_state is
  'meshhook-alerts: daemon key/value state (watermarks); service role only';

create or replace trigger alert_configs_set_updated_at
  before update on public.alert_configs
  for each row execute function public.alert_set_updated_at();
create or replace trigger alert_logs_set_updated_at
  before update on public.alert_logs
  for each row execute function public.alert_set_updated_at();
create or replace trigger alert_daemon_state_set_updated_at
  before update on public.alert_daemon_state
  for each row execute function public.alert_set_updated_at();

-- Grants as Supabase gives them to tables in public; RLS (next migration)
-- decides what anon and authenticated actually see.
grant all on table public.alert_configs, public.alert_logs, public.alert_attempts,
  public.alert_daemon_state to anon, authenticated, service_role;
grant usage, select on sequence public.alert_attempts_id_seq to anon, authenticated, service_role;
grant execute on function public.alert_set_updated_at() to anon, authenticated, service_role;

do $$
begin
  -- Owner project: MeshHook's projects table, when this project has it.
  if to_regclass('public.projects') is not null
     and not exists (select 1 from pg_constraint
                     where conname = 'alert_configs_project_id_fkey'
                       and conrelid = 'public.alert_configs'::regclass) then
    alter table public.alert_configs
      add constraint alert_configs_project_id_fkey
      foreign key (project_id) references public.projects (id) on delete cascade;
  end if;

  -- The daemon's catch-up query pages workflow_runs by (updated_at, id).
  if to_regclass('public.workflow_runs') is not null then
    create index if not exists idx_workflow_runs_updated_at_id
      on public.workflow_runs (updated_at, id);
  end if;
end
$$;

notify pgrst, 'reload schema';
