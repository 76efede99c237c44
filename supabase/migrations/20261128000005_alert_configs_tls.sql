-- meshhook-alerts: optional per-rule TLS settings for webhook endpoints.
--
-- tls_ca_pem           PEM CA certificate(s) the endpoint's certificate must
--                      chain to (instead of the system roots); may be sealed
-- tls_client_cert_pem  PEM client certificate chain for mutual TLS; may be sealed
-- tls_client_key_pem   PEM private key of that certificate; store it sealed
--                      (mhsealed:v1:..., see `meshhook-alerts seal`)
--
-- All three are nullable; a rule without them uses the system roots and no
-- client certificate. Safe to run more than once.

alter table public.alert_configs
  add column if not exists tls_ca_pem text,
  add column if not exists tls_client_cert_pem text,
  add column if not exists tls_client_key_pem text;

comment on column public.alert_configs.tls_ca_pem is
  'PEM CA certificate(s) trusted for this rule''s endpoint instead of the system roots; may be sealed';
comment on column public.alert_configs.tls_client_cert_pem is
  'PEM client certificate chain for mutual TLS; may be sealed';
comment on column public.alert_configs.tls_client_key_pem is
  'PEM private key for mutual TLS; must be sealed (mhsealed:v1:...) unless secrets.allow_plaintext';

notify pgrst, 'reload schema';
