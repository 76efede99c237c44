package rulerow

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// ErrPlaintext marks a secret-bearing field stored in clear while
// secrets.allow_plaintext is off.
var ErrPlaintext = errors.New("stored in plaintext; seal it with `meshhook-alerts seal` (or set secrets.allow_plaintext)")

// Opener opens the sealed values of alert rules — webhook_url, routing_key,
// signing_secrets, custom_headers values and the tls_* columns — with the
// configured keyring, and seals the rendered target URL of each claimed
// alert. Plaintext values are refused unless allowPlaintext is set, in which
// case each rule storing them is logged once with a warning. Errors name
// the rule's field, never its value. It is safe for concurrent use.
type Opener struct {
	keys           *seal.Keyring
	allowPlaintext bool
	log            *zap.Logger

	mu     sync.Mutex
	warned map[string]bool // rule ids warned about plaintext
}

// NewOpener builds an Opener. keys may be nil (no key configured): then
// only plaintext values work, and only with allowPlaintext.
func NewOpener(keys *seal.Keyring, allowPlaintext bool, log *zap.Logger) *Opener {
	if log == nil {
		log = zap.NewNop()
	}
	return &Opener{keys: keys, allowPlaintext: allowPlaintext, log: log, warned: map[string]bool{}}
}

// value is one stored secret-bearing value: ref names it in logs
// (signing_secrets[0]), what in errors ("secret 1"; empty for a field that
// holds one value).
type value struct{ ref, what, stored string }

// fail is the *alerts.FieldError for v, naming its field, never its value.
func (v value) fail(err error) error {
	field, _, _ := strings.Cut(v.ref, "[")
	if v.what != "" {
		err = fmt.Errorf("%s %w", v.what, err)
	}
	return &alerts.FieldError{Field: field, Err: err}
}

// open opens v; plain collects the refs of values stored in clear.
func (o *Opener) open(v value, plain *[]string) (string, error) {
	if seal.IsSealed(v.stored) {
		out, err := o.keys.Open(v.stored)
		if err != nil {
			return "", v.fail(fmt.Errorf("cannot be opened: %w", err))
		}
		return out, nil
	}
	if v.stored == "" {
		return "", nil
	}
	if !o.allowPlaintext {
		return "", v.fail(ErrPlaintext)
	}
	*plain = append(*plain, v.ref)
	return v.stored, nil
}

// openPublic opens a value that may also be stored in clear.
func (o *Opener) openPublic(v value) (string, error) {
	if !seal.IsSealed(v.stored) {
		return v.stored, nil
	}
	out, err := o.keys.Open(v.stored)
	if err != nil {
		return "", v.fail(fmt.Errorf("cannot be opened: %w", err))
	}
	return out, nil
}

// Open returns spec with its sealed values opened, t's TLS material opened
// and validated onto it. A rule whose values cannot be opened, or that
// stores secrets in plaintext without secrets.allow_plaintext, is refused
// with an error joining one *alerts.FieldError per offending value; the
// spec is then returned too, with those values left empty, for callers
// that show what they can (the API).
func (o *Opener) Open(spec alerts.RuleSpec, t supabase.ConfigTLS) (alerts.RuleSpec, error) {
	var errs []error
	var plain []string
	out := spec
	var err error
	if out.WebhookURL, err = o.open(value{"webhook_url", "", spec.WebhookURL}, &plain); err != nil {
		errs = append(errs, err)
	}
	out.Secrets = make([]string, 0, len(spec.Secrets))
	for i, s := range spec.Secrets {
		v, err := o.open(value{fmt.Sprintf("signing_secrets[%d]", i), fmt.Sprintf("secret %d", i+1), s}, &plain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Secrets = append(out.Secrets, v)
	}
	if spec.Headers != nil {
		out.Headers = make(map[string]string, len(spec.Headers))
		for _, name := range slices.Sorted(maps.Keys(spec.Headers)) {
			v, err := o.open(value{fmt.Sprintf("custom_headers[%q]", name), fmt.Sprintf("header %q", name), spec.Headers[name]}, &plain)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out.Headers[name] = v
		}
	}
	if spec.RoutingKey != "" {
		if out.RoutingKey, err = o.open(value{"routing_key", "", spec.RoutingKey}, &plain); err != nil {
			errs = append(errs, err)
		}
	}
	out.TLS = nil
	if !t.IsZero() {
		m := &alerts.TLSMaterial{}
		// Certificates are public: they may be stored sealed or in clear.
		if m.CAPEM, err = o.openPublic(value{"tls_ca_pem", "", t.CAPEM}); err != nil {
			errs = append(errs, err)
		}
		if m.CertPEM, err = o.openPublic(value{"tls_client_cert_pem", "", t.ClientCertPEM}); err != nil {
			errs = append(errs, err)
		}
		if m.KeyPEM, err = o.open(value{"tls_client_key_pem", "", t.ClientKeyPEM}, &plain); err != nil {
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			if _, err := sender.BuildTLSConfig(SenderTLS(m)); err != nil {
				errs = append(errs, &alerts.FieldError{Field: "tls", Err: err})
			}
		}
		out.TLS = m
	}
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	o.mu.Lock()
	warn := len(plain) > 0 && !o.warned[spec.ID]
	if warn {
		o.warned[spec.ID] = true
	}
	o.mu.Unlock()
	if warn {
		o.log.Warn("alert rule stores secrets in plaintext (allowed by secrets.allow_plaintext); seal them with `meshhook-alerts seal`",
			zap.String("rule_id", spec.ID), zap.Strings("fields", plain))
	}
	return out, nil
}

// Retain drops what the opener keeps about rules not in ids.
func (o *Opener) Retain(ids map[string]struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id := range o.warned {
		if _, ok := ids[id]; !ok {
			delete(o.warned, id)
		}
	}
}

// SenderTLS is the sender's view of a rule's TLS material (nil: none).
func SenderTLS(m *alerts.TLSMaterial) *sender.TLSConfig {
	if m == nil {
		return nil
	}
	return &sender.TLSConfig{CAPEM: m.CAPEM, CertPEM: m.CertPEM, KeyPEM: m.KeyPEM}
}

// SealValue seals a value the daemon writes (a claimed alert's rendered
// target URL). Without a current key it returns the value unchanged when
// plaintext is allowed, and an error otherwise.
func (o *Opener) SealValue(v string) (string, error) {
	if o.keys.CanSeal() {
		return o.keys.Seal(v)
	}
	if o.allowPlaintext {
		return v, nil
	}
	return "", seal.ErrNoKey
}

// OpenValue opens a value the daemon wrote (a claimed alert's target URL);
// plaintext is returned as is, since the daemon wrote it.
func (o *Opener) OpenValue(v string) (string, error) {
	if !seal.IsSealed(v) {
		return v, nil
	}
	return o.keys.Open(v)
}
