-- meshhook-alerts: row-level security on the alert tables.
--
-- RLS is always on. The service role bypasses it (BYPASSRLS), which is how
-- the daemon reads and writes. When MeshHook's projects table and Supabase's
-- auth.uid() exist, a project's owner may manage its alert rules and read
-- their logs and attempts. alert_daemon_state has no policies: service role
-- only. Safe to run more than once.

alter table public.alert_configs enable row level security;
alter table public.alert_logs enable row level security;
alter table public.alert_attempts enable row level security;
alter table public.alert_daemon_state enable row level security;

do $$
begin
  if to_regclass('public.projects') is null or to_regprocedure('auth.uid()') is null then
    raise notice 'meshhook-alerts: public.projects or auth.uid() missing; alert tables are service-role only';
    return;
  end if;

  drop policy if exists alert_configs_select on public.alert_configs;
  drop policy if exists alert_configs_insert on public.alert_configs;
  drop policy if exists alert_configs_update on public.alert_configs;
  drop policy if exists alert_configs_delete on public.alert_configs;
  drop policy if exists alert_logs_select on public.alert_logs;
  drop policy if exists alert_attempts_select on public.alert_attempts;

  create policy alert_configs_select on public.alert_configs
    for select to authenticated
    using (project_id in (select p.id from public.projects p where p.owner = (select auth.uid())));
  create policy alert_configs_insert on public.alert_configs
    for insert to authenticated
    with check (project_id in (select p.id from public.projects p where p.owner = (select auth.uid())));
  create policy alert_configs_update on public.alert_configs
    for update to authenticated
    using (project_id in (select p.id from public.projects p where p.owner = (select auth.uid())))
    with check (project_id in (select p.id from public.projects p where p.owner = (select auth.uid())));
  create policy alert_configs_delete on public.alert_configs
    for delete to authenticated
    using (project_id in (select p.id from public.projects p where p.owner = (select auth.uid())));

  create policy alert_logs_select on public.alert_logs
    for select to authenticated
    using (config_id in (
      select c.id
      from public.alert_configs c
      join public.projects p on p.id = c.project_id
      where p.owner = (select auth.uid())));

  create policy alert_attempts_select on public.alert_attempts
    for select to authenticated
    using (alert_id in (
      select l.id
      from public.alert_logs l
      join public.alert_configs c on c.id = l.config_id
      join public.projects p on p.id = c.project_id
      where p.owner = (select auth.uid())));
end
$$;

notify pgrst, 'reload schema';
