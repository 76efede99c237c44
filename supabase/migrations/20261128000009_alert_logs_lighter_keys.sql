-- meshhook-alerts: fewer index writes per alert, and joins by key at any size.
--
-- * alert_logs_webhook_id_key goes. A webhook_id is derived from the claim
--   key (the first 160 bits of SHA-256 over rule id, run id and event), so
--   alert_logs_claim_key already makes it unique. The second unique index
--   cost an index insert and a uniqueness check on every claim and on every
--   status change (a status change moves the row: no update of alert_logs
--   is a HOT update), about a fifth of the database's work per alert. No
--   query looks alerts up by webhook_id.
-- * alert_report_deliveries and alert_claim join a batch of at most about a
--   thousand rows to alert_logs and alert_configs by primary key. The planner
--   takes every jsonb_to_recordset for 100 rows and, while a table is small
--   or its statistics are stale (a busy day's growth between two ANALYZEs),
--   hash-joins the batch against a sequential scan of the whole table, so the
--   cost of a batch grew with the table. A primary-key probe costs the same
--   at any size: the functions now plan these joins as nested loops over
--   index scans.
--
-- Safe to run more than once.

alter table public.alert_logs drop constraint if exists alert_logs_webhook_id_key;

alter function public.alert_report_deliveries(jsonb, jsonb)
  set enable_hashjoin = off
  set enable_mergejoin = off
  set enable_seqscan = off;

alter function public.alert_claim(jsonb)
  set enable_hashjoin = off
  set enable_mergejoin = off
  set enable_seqscan = off;

notify pgrst, 'reload schema';
