package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// ErrPlaintext marks a secret-bearing field stored in clear while
// secrets.allow_plaintext is off.
var ErrPlaintext = errors.New("stored in plaintext; seal it with `meshhook-alerts seal` (or set secrets.allow_plaintext)")

// Opener opens the sealed values of alert rules — webhook_url,
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

// open opens one stored value of field; plain collects plaintext fields.
func (o *Opener) open(field, v string, plain *[]string) (string, error) {
	if seal.IsSealed(v) {
		out, err := o.keys.Open(v)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		return out, nil
	}
	if v == "" {
		return "", nil
	}
	if !o.allowPlaintext {
		return "", fmt.Errorf("%s: %w", field, ErrPlaintext)
	}
	*plain = append(*plain, field)
	return v, nil
}

// openPublic opens a value that may also be stored in clear.
func (o *Opener) openPublic(field, v string) (string, error) {
	if !seal.IsSealed(v) {
		return v, nil
	}
	out, err := o.keys.Open(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return out, nil
}

// Open returns spec with its sealed values opened, t's TLS material opened
// and validated onto it. A rule whose values cannot be opened, or
// that stores secrets in plaintext without secrets.allow_plaintext, is
// refused with an error naming every offending field.
func (o *Opener) Open(spec alerts.RuleSpec, t supabase.ConfigTLS) (alerts.RuleSpec, error) {
	var errs []error
	var plain []string
	out := spec
	var err error
	if out.WebhookURL, err = o.open("webhook_url", spec.WebhookURL, &plain); err != nil {
		errs = append(errs, err)
	}
	out.Secrets = make([]string, 0, len(spec.Secrets))
	for i, s := range spec.Secrets {
		v, err := o.open(fmt.Sprintf("signing_secrets[%d]", i), s, &plain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Secrets = append(out.Secrets, v)
	}
	if spec.Headers != nil {
		out.Headers = make(map[string]string, len(spec.Headers))
		for _, name := range slices.Sorted(maps.Keys(spec.Headers)) {
			v, err := o.open(fmt.Sprintf("custom_headers[%q]", name), spec.Headers[name], &plain)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out.Headers[name] = v
		}
	}
	out.TLS = nil
	if !t.IsZero() {
		m := &alerts.TLSMaterial{}
		// Certificates are public: they may be stored sealed or in clear.
		if m.CAPEM, err = o.openPublic("tls_ca_pem", t.CAPEM); err != nil {
			errs = append(errs, err)
		}
		if m.CertPEM, err = o.openPublic("tls_client_cert_pem", t.ClientCertPEM); err != nil {
			errs = append(errs, err)
		}
		if m.KeyPEM, err = o.open("tls_client_key_pem", t.ClientKeyPEM, &plain); err != nil {
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			if _, err := sender.BuildTLSConfig(senderTLS(m)); err != nil {
				errs = append(errs, fmt.Errorf("tls: %w", err))
			}
		}
		out.TLS = m
	}
	if err := errors.Join(errs...); err != nil {
		return alerts.RuleSpec{}, err
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

// retain drops what the opener keeps about rules not in ids.
func (o *Opener) retain(ids map[string]struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id := range o.warned {
		if _, ok := ids[id]; !ok {
			delete(o.warned, id)
		}
	}
}

// senderTLS is the sender's view of a rule's TLS material (nil: none).
func senderTLS(m *alerts.TLSMaterial) *sender.TLSConfig {
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

// SealedStore is the engine's Store with sealing: it opens rules as they are
// loaded (handing those that cannot be opened to the rule registry as
// rejected, with the reason) and seals each claimed alert's target URL
// before it is written. Every other method is SupabaseStore's.
type SealedStore struct {
	*SupabaseStore
	open *Opener
}

// NewSealedStore wraps inner with o.
func NewSealedStore(inner *SupabaseStore, o *Opener) *SealedStore {
	return &SealedStore{SupabaseStore: inner, open: o}
}

// LoadRules reads every rule and opens its sealed values. A rule that
// cannot be opened is rejected, naming the fields.
func (s *SealedStore) LoadRules(ctx context.Context, load alerts.RuleSink) error {
	tls, err := s.db.ListConfigTLS(ctx)
	if err != nil {
		return err
	}
	seen := make(map[string]struct{})
	err = s.db.EachAlertConfig(ctx, func(c supabase.AlertConfig) error {
		seen[c.ID] = struct{}{}
		spec, err := s.open.Open(rulerow.Spec(c), tls[c.ID])
		if err != nil {
			load.Reject(c.ID, fmt.Errorf("its secret fields cannot be used: %w", err))
			return nil
		}
		load.Add(spec)
		return nil
	})
	if err != nil {
		return err
	}
	s.open.retain(seen)
	return nil
}

// DecodeRule opens a rule from a Realtime change. A record that lacks
// columns is re-read over REST first: Realtime leaves unchanged large
// (TOASTed) values out of an update, and sealed certificates are large. A
// complete record is used as it is, so that rules inserted in bulk do not
// cost two requests each while run changes wait behind them.
func (s *SealedStore) DecodeRule(row map[string]any) (alerts.RuleSpec, error) {
	c, err := supabase.DecodeAlertConfig(row)
	if err != nil {
		return alerts.RuleSpec{}, err
	}
	t, _ := supabase.DecodeConfigTLS(row)
	if !supabase.ConfigRowComplete(row) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if fresh, err := s.db.GetAlertConfig(ctx, c.ID); err == nil {
			c = fresh
			if ft, err := s.db.GetConfigTLS(ctx, c.ID); err == nil {
				t = ft
			}
		} else if supabase.IsNotFound(err) {
			return alerts.RuleSpec{}, fmt.Errorf("alert rule %s no longer exists", c.ID)
		}
	}
	spec, err := s.open.Open(rulerow.Spec(c), t)
	if err != nil {
		return alerts.RuleSpec{}, fmt.Errorf("its secret fields cannot be used: %w", err)
	}
	return spec, nil
}

// Claim seals the alerts' rendered target URLs and records the alerts. An
// alert whose URL cannot be sealed fails alone.
func (s *SealedStore) Claim(ctx context.Context, cs []alerts.Claim) ([]alerts.ClaimResult, error) {
	out := make([]alerts.ClaimResult, len(cs))
	sealed := make([]alerts.Claim, 0, len(cs))
	at := make([]int, 0, len(cs))
	for i, c := range cs {
		u, err := s.open.SealValue(c.TargetURL)
		if err != nil {
			out[i].Err = fmt.Errorf("seal target_url: %w", err)
			continue
		}
		c.TargetURL = u
		sealed = append(sealed, c)
		at = append(at, i)
	}
	if len(sealed) == 0 {
		return out, nil
	}
	res, err := s.SupabaseStore.Claim(ctx, sealed)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		out[at[j]] = r
	}
	return out, nil
}
