-- meshhook-alerts: a redelivered alert gets a fresh retry budget.
--
-- The sender gives an alert up after sender.max_attempts attempts or once it
-- is older than sender.max_age. A redelivery (POST
-- /api/alerts/logs/{id}/redeliver) makes a finished alert pending again, but
-- attempts kept counting from the first delivery and age from created_at, so
-- an alert that had used its attempts (or was a day old) failed again as
-- gave_up without any new attempt. Attempt numbers must keep counting (they
-- key alert_attempts, the alert's history), so the budget gets its own
-- columns:
--
-- attempt_base    attempts made before the latest redelivery; the sender
--                 counts max_attempts from here
-- redelivered_at  when the alert was last redelivered (null: never); the
--                 sender counts max_age from here instead of created_at
--
-- Adding the columns rewrites nothing (constant defaults). Safe to run more
-- than once.

alter table public.alert_logs
  add column if not exists attempt_base integer not null default 0,
  add column if not exists redelivered_at timestamptz;

alter table public.alert_logs drop constraint if exists alert_logs_attempt_base_check;
alter table public.alert_logs
  add constraint alert_logs_attempt_base_check check (attempt_base >= 0 and attempt_base <= attempts);

comment on column public.alert_logs.attempt_base is
  'attempts made before the latest redelivery; sender.max_attempts counts the attempts after it';
comment on column public.alert_logs.redelivered_at is
  'when the alert was last redelivered; sender.max_age counts from here (else from created_at)';

notify pgrst, 'reload schema';
