-- meshhook-alerts: delivery charts from the attempts the daemon records.
--
-- alert_delivery_series(p_since, p_bucket_seconds, p_buckets, p_config_id)
--   One aggregate over the attempts started in [p_since, p_since +
--   p_buckets * p_bucket_seconds), in buckets of p_bucket_seconds, of one
--   rule (p_config_id) or of every rule the caller may see. Each bucket
--   that has an attempt is a row (empty buckets are left out):
--
--   bucket     the bucket's index, 0 for the one starting at p_since
--   delivered  attempts the receiver accepted (outcome 'ok')
--   retried    failed attempts that were, or will be, tried again
--   gave_up    failed attempts after which the alert was given up
--              (the last attempt of an alert whose status is 'failed')
--   p50_ms,    commit → receipt latency of the delivered attempts: from the
--   p99_ms     run change's commit (alert_logs.occurred_at) to the end of
--              the attempt the receiver accepted (started_at + latency_ms),
--              in milliseconds; null when nothing was delivered. A
--              redelivery (POST /api/alerts/logs/{id}/redeliver) is not a
--              commit's delivery: its attempts count, their latency not.
--
--   SECURITY INVOKER (the default): row-level security applies, so a user
--   counts the attempts of their projects' rules only; the service role
--   (the daemon's operator view) counts every attempt. p_buckets is capped
--   at 1440 and p_bucket_seconds must be positive.
--
-- alert_attempts_started_at_brin
--   The window is found by started_at. alert_attempts is append-only and
--   its rows arrive in started_at order, so a BRIN index finds a day's
--   attempts for a few pages of index and costs next to nothing per insert
--   (a B-tree would add an index insert to every attempt).
--
-- Safe to run more than once.

create index if not exists alert_attempts_started_at_brin
  on public.alert_attempts using brin (started_at);

create or replace function public.alert_delivery_series(
  p_since timestamptz, p_bucket_seconds integer, p_buckets integer, p_config_id uuid default null)
returns table (bucket integer, delivered bigint, retried bigint, gave_up bigint, p50_ms double precision, p99_ms double precision)
language sql
stable
set search_path = pg_catalog, public
as $$
  with a as (
    select floor(extract(epoch from (t.started_at - p_since)) / p_bucket_seconds)::integer as bucket,
           t.outcome = 'ok' as ok,
           t.outcome <> 'ok' and l.status = 'failed' and t.attempt = l.attempts as last_failed,
           case when t.outcome = 'ok' and (l.redelivered_at is null or t.started_at < l.redelivered_at)
                then extract(epoch from (t.started_at - l.occurred_at)) * 1000 + coalesce(t.latency_ms, 0)
           end as commit_ms
      from public.alert_attempts t
      join public.alert_logs l on l.id = t.alert_id
     where p_bucket_seconds > 0
       and t.started_at >= p_since
       and t.started_at < p_since + make_interval(secs => p_bucket_seconds::double precision * least(p_buckets, 1440))
       and (p_config_id is null or l.config_id = p_config_id)
  )
  select bucket,
         count(*) filter (where ok),
         count(*) filter (where not ok and not last_failed),
         count(*) filter (where last_failed),
         percentile_cont(0.5) within group (order by commit_ms) filter (where ok),
         percentile_cont(0.99) within group (order by commit_ms) filter (where ok)
    from a
   group by bucket
   order by bucket
$$;

comment on function public.alert_delivery_series(timestamptz, integer, integer, uuid) is
  'meshhook-alerts: attempts per time bucket by outcome, with commit-to-receipt latency percentiles (row-level security applies)';

revoke all on function public.alert_delivery_series(timestamptz, integer, integer, uuid) from public, anon;
grant execute on function public.alert_delivery_series(timestamptz, integer, integer, uuid) to authenticated, service_role;

notify pgrst, 'reload schema';
