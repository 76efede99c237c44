-- meshhook-alerts: publish the tables the daemon watches over Supabase
-- Realtime: MeshHook's workflow_runs (when present) and alert_configs (so
-- rule edits reach the daemon without polling). MeshHook's own migrations
-- add nothing to supabase_realtime. Safe to run more than once.

do $$
declare
  t text;
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;

  -- A FOR ALL TABLES publication already covers everything and refuses ADD TABLE.
  if (select puballtables from pg_publication where pubname = 'supabase_realtime') then
    return;
  end if;

  foreach t in array array['workflow_runs', 'alert_configs'] loop
    if to_regclass(format('public.%I', t)) is not null
       and not exists (select 1 from pg_publication_tables
                       where pubname = 'supabase_realtime'
                         and schemaname = 'public' and tablename = t) then
      execute format('alter publication supabase_realtime add table public.%I', t);
    end if;
  end loop;
end
$$;

notify pgrst, 'reload schema';
