-- MeshHook's core schema (its migrations 1, 2, 6 and 9), reduced to the tables
-- meshhook-alerts reads: projects, workflow_definitions and workflow_runs with
-- their exact columns, CHECK constraints, updated_at triggers and RLS. Tests
-- and the demo apply meshhook-alerts' own migrations on top of this.

create or replace function public.update_updated_at_column() returns trigger
language plpgsql as $$
begin
  new.updated_at = now();
  return new;
end;
$$;

create table public.projects (
  id         uuid primary key default gen_random_uuid(),
  owner      uuid not null,
  name       text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index idx_projects_owner on public.projects (owner);
create trigger update_projects_updated_at before update on public.projects
  for each row execute function public.update_updated_at_column();

create table public.workflow_definitions (
  id          uuid primary key default gen_random_uuid(),
  project_id  uuid not null references public.projects (id) on delete cascade,
  slug        text not null,
  version     integer not null default 1,
  definition  jsonb not null,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  name        text not null,
  description text,
  status      text default 'draft' check (status in ('draft', 'published', 'archived')),
  user_id     uuid,
  unique (project_id, slug, version)
);
create index idx_workflow_definitions_project_id on public.workflow_definitions (project_id);
create index idx_workflow_definitions_project_slug on public.workflow_definitions (project_id, slug);
create trigger update_workflow_definitions_updated_at before update on public.workflow_definitions
  for each row execute function public.update_updated_at_column();

create table public.workflow_runs (
  id          uuid primary key default gen_random_uuid(),
  project_id  uuid not null references public.projects (id) on delete cascade,
  workflow_id uuid not null references public.workflow_definitions (id) on delete cascade,
  status      text not null check (status in ('running', 'succeeded', 'failed', 'paused', 'canceled')),
  started_at  timestamptz not null default now(),
  finished_at timestamptz,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);
create index idx_workflow_runs_project_id on public.workflow_runs (project_id);
create index idx_workflow_runs_workflow_id on public.workflow_runs (workflow_id);
create index idx_workflow_runs_status on public.workflow_runs (status);
create index idx_workflow_runs_project_started on public.workflow_runs (project_id, started_at desc);
create trigger update_workflow_runs_updated_at before update on public.workflow_runs
  for each row execute function public.update_updated_at_column();

create or replace function public.user_project_ids() returns setof uuid
language sql security definer stable as $$
  select id from public.projects where owner = auth.uid()
$$;

alter table public.projects enable row level security;
alter table public.workflow_definitions enable row level security;
alter table public.workflow_runs enable row level security;

create policy projects_select on public.projects for select using (owner = auth.uid());
create policy projects_insert on public.projects for insert with check (owner = auth.uid());
create policy projects_update on public.projects for update using (owner = auth.uid());
create policy projects_delete on public.projects for delete using (owner = auth.uid());

create policy workflow_definitions_select on public.workflow_definitions for select
  using (project_id in (select public.user_project_ids()));
create policy workflow_definitions_insert on public.workflow_definitions for insert
  with check (project_id in (select public.user_project_ids()));
create policy workflow_definitions_update on public.workflow_definitions for update
  using (project_id in (select public.user_project_ids()));
create policy workflow_definitions_delete on public.workflow_definitions for delete
  using (project_id in (select public.user_project_ids()));

create policy workflow_runs_select on public.workflow_runs for select
  using (project_id in (select public.user_project_ids()));
create policy workflow_runs_insert on public.workflow_runs for insert
  with check (project_id in (select public.user_project_ids()));
create policy workflow_runs_update on public.workflow_runs for update
  using (project_id in (select public.user_project_ids()));
create policy workflow_runs_delete on public.workflow_runs for delete
  using (project_id in (select public.user_project_ids()));
