-- meshhook-alerts: continuous reconciliation of the watched runs table.
--
-- alert_reconcile(p_key, p_holder, p_lease_ms, p_cursor)
--   One call per reconciliation pass. It
--   1. takes or renews the reconcile lease stored under p_key in
--      alert_daemon_state for p_holder, for p_lease_ms, when the lease is
--      free, expired or already p_holder's (compare-and-set, so of several
--      daemons one reconciles at a time and another takes over when its
--      lease lapses); the row is written only when the holder changes, the
--      lease is past half its life or p_cursor moves, so an idle pass
--      writes nothing;
--   2. when the caller holds the lease and p_cursor is given, stores it as
--      the reconcile cursor ({"at": timestamptz text, "id": text});
--   3. returns the horizon: the start time of the oldest transaction still
--      in progress in this database (now() when there is none). A trigger
--      that sets updated_at = now() stamps a row with its transaction's
--      start, so every row a transaction still in progress may commit has
--      updated_at at or after the horizon: a reader that has seen every
--      row before it has missed none. "hidden" is true when some session's
--      transaction start could not be read (the function's owner lacks
--      pg_read_all_stats); the caller must then not trust the horizon.
--   Returns {"held": bool, "holder": text, "cursor": {...} | null,
--            "horizon": timestamptz, "hidden": bool, "now": timestamptz}.
--
-- Called over PostgREST (/rest/v1/rpc/alert_reconcile) by the service role
-- only. SECURITY DEFINER: reading every session's xact_start needs the
-- owner's pg_read_all_stats (grant pg_read_all_stats to postgres where it
-- lacks it; without it "hidden" is true). Safe to run more than once.

create or replace function public.alert_reconcile(p_key text, p_holder text, p_lease_ms integer, p_cursor jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, public
as $$
declare
  v_now      timestamptz := now();
  v_state    jsonb;
  v_holder   text;
  v_expires  timestamptz;
  v_cursor   jsonb;
  v_held     boolean := false;
  v_write    boolean := false;
  v_horizon  timestamptz;
  v_hidden   boolean;
  v_lease    interval := make_interval(secs => greatest(coalesce(p_lease_ms, 0), 1000) / 1000.0);
begin
  if p_key is null or p_holder is null or p_holder = '' then
    raise exception 'alert_reconcile: p_key and p_holder are required';
  end if;

  select min(a.xact_start),
         coalesce(bool_or(a.state is null), false)
    into v_horizon, v_hidden
    from pg_stat_activity a
   where a.backend_type = 'client backend'
     and a.pid <> pg_backend_pid()
     and (a.xact_start is not null or a.state is null);
  v_horizon := least(coalesce(v_horizon, v_now), v_now);

  select s.value into v_state from public.alert_daemon_state s where s.key = p_key;
  v_holder  := v_state->>'holder';
  v_expires := (v_state->>'expires_at')::timestamptz;
  v_cursor  := v_state->'cursor';

  if v_state is null or v_holder is null or v_holder = p_holder or v_expires is null or v_expires < v_now then
    v_held := true;
    v_write := v_state is null or v_holder is distinct from p_holder
               or v_expires is null or v_expires - v_now < v_lease / 2
               or (p_cursor is not null and p_cursor is distinct from v_cursor);
  end if;

  if v_held and v_write then
    if p_cursor is not null then
      v_cursor := p_cursor;
    end if;
    insert into public.alert_daemon_state as s (key, value)
    values (p_key, jsonb_build_object('holder', p_holder, 'expires_at', v_now + v_lease, 'cursor', v_cursor))
    on conflict (key) do update
       set value = excluded.value
     where s.value->>'holder' is not distinct from v_holder
       and s.value->>'expires_at' is not distinct from v_state->>'expires_at';
    if not found then
      -- Another daemon took the lease between our read and our write.
      v_held := false;
      select s.value into v_state from public.alert_daemon_state s where s.key = p_key;
      v_holder := v_state->>'holder';
      v_cursor := v_state->'cursor';
    else
      v_holder := p_holder;
    end if;
  end if;

  return jsonb_build_object('held', v_held, 'holder', v_holder, 'cursor', v_cursor,
                            'horizon', v_horizon, 'hidden', v_hidden, 'now', v_now);
end
$$;

comment on function public.alert_reconcile(text, text, integer, jsonb) is
  'meshhook-alerts: reconcile lease, cursor and safe horizon in one call (service role only)';

revoke all on function public.alert_reconcile(text, text, integer, jsonb) from public, anon, authenticated;
grant execute on function public.alert_reconcile(text, text, integer, jsonb) to service_role;

-- PostgREST picks up the new function.
notify pgrst, 'reload schema';
