-- meshhook-alerts: claim the resolved alerts of a batch in one call.
--
-- alert_claim_resolves(p_alerts)
--   p_alerts is a JSON array of alerts as alert_claim_resolve takes one.
--   Each is claimed as alert_claim_resolve claims it (same result, same
--   exactly-once), all in one transaction, and the results are returned
--   as a JSON array in the order of p_alerts ({} where nothing was
--   claimed). The daemon makes one call for the successes of a batch
--   after the batch's alert_claim, instead of one call per success.
--
--   The alerts are claimed in one order whoever calls (rule, workflow,
--   time): each claim locks the failed alerts it resolves until the call
--   ends, so two calls taking them in different orders could deadlock.
--   In that order an earlier success of a workflow claims first, and a
--   later one of the same call sees what it resolved.
--
-- Safe to run more than once.

create or replace function public.alert_claim_resolves(p_alerts jsonb)
returns jsonb
language plpgsql
volatile
set search_path = pg_catalog, public
as $$
declare
  v_res jsonb[];
  v_alert record;
begin
  v_res := array_fill(null::jsonb, array[jsonb_array_length(coalesce(p_alerts, '[]'::jsonb))]);
  for v_alert in
    select a.value, a.ordinality
      from jsonb_array_elements(coalesce(p_alerts, '[]'::jsonb)) with ordinality as a
     order by a.value ->> 'config_id', coalesce(a.value ->> 'workflow_slug', ''),
              (a.value ->> 'occurred_at')::timestamptz, a.ordinality
  loop
    v_res[v_alert.ordinality] := public.alert_claim_resolve(v_alert.value);
  end loop;
  return coalesce(to_jsonb(v_res), '[]'::jsonb);
end;
$$;

comment on function public.alert_claim_resolves(jsonb) is
  'meshhook-alerts: alert_claim_resolve for many alerts in one call, results in input order (service role only)';

revoke all on function public.alert_claim_resolves(jsonb) from public, anon, authenticated;
grant execute on function public.alert_claim_resolves(jsonb) to service_role;

notify pgrst, 'reload schema';
