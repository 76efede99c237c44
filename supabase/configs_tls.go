package supabase

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/supabase-community/postgrest-go"
)

// ConfigTLS is a rule's optional TLS material (the tls_* columns of
// alert_configs, added by 20261128000005_alert_configs_tls.sql). Values may
// be sealed envelopes; "" means NULL.
type ConfigTLS struct {
	CAPEM         string
	ClientCertPEM string
	ClientKeyPEM  string
}

// IsZero reports whether no TLS column is set.
func (t ConfigTLS) IsZero() bool { return t == ConfigTLS{} }

const tlsColumns = "id,tls_ca_pem,tls_client_cert_pem,tls_client_key_pem"

func decodeConfigTLS(raw []byte) (string, ConfigTLS, error) {
	d, err := newRowDecoder("alert config TLS", raw)
	if err != nil {
		return "", ConfigTLS{}, err
	}
	var id, ca, cert, key nullString
	d.field("id", &id)
	d.field("tls_ca_pem", &ca)
	d.field("tls_client_cert_pem", &cert)
	d.field("tls_client_key_pem", &key)
	if err := d.err(); err != nil {
		return "", ConfigTLS{}, err
	}
	return string(id), ConfigTLS{CAPEM: string(ca), ClientCertPEM: string(cert), ClientKeyPEM: string(key)}, nil
}

// DecodeConfigTLS reads the TLS columns of an alert_configs row given as a
// map (for example a Realtime change record). Missing columns read as "".
func DecodeConfigTLS(row map[string]any) (ConfigTLS, error) {
	raw, err := json.Marshal(row)
	if err != nil {
		return ConfigTLS{}, fmt.Errorf("alert config TLS: %w", err)
	}
	_, t, err := decodeConfigTLS(raw)
	return t, err
}

// ListConfigTLS returns the TLS material of every rule that has any, by rule id.
func (s *Store) ListConfigTLS(ctx context.Context) (map[string]ConfigTLS, error) {
	const op = "list alert config TLS"
	out := map[string]ConfigTLS{}
	err := s.scan(ctx, keysetQuery{
		op: op, table: TableAlertConfigs, columns: tlsColumns, keys: []string{"id"},
		filter: func(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder {
			return fb.Or("tls_ca_pem.not.is.null,tls_client_cert_pem.not.is.null,tls_client_key_pem.not.is.null", "")
		},
	}, func(_ map[string]any, raw json.RawMessage) error {
		id, t, err := decodeConfigTLS(raw)
		if err != nil {
			return fmt.Errorf("supabase: %s: %w", op, err)
		}
		out[id] = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetConfigTLS returns one rule's TLS material, or an error satisfying
// IsNotFound.
func (s *Store) GetConfigTLS(ctx context.Context, id string) (ConfigTLS, error) {
	return getByID(ctx, s, "get alert config TLS", TableAlertConfigs, tlsColumns, id, func(raw []byte) (ConfigTLS, error) {
		_, t, err := decodeConfigTLS(raw)
		return t, err
	})
}
