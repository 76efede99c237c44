package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// SealedStore is the engine's Store with sealing: it opens rules as they are
// loaded (handing those that cannot be opened to the rule registry as
// rejected, with the reason) and seals each claimed alert's target URL
// before it is written. Every other method is SupabaseStore's.
type SealedStore struct {
	*SupabaseStore
	open *rulerow.Opener
}

// NewSealedStore wraps inner with o.
func NewSealedStore(inner *SupabaseStore, o *rulerow.Opener) *SealedStore {
	return &SealedStore{SupabaseStore: inner, open: o}
}

// LoadRules reads every rule and opens its sealed values. A rule that
// cannot be opened is rejected, naming the fields. Rules whose TLS
// material changed while they were read are read again (see below): one
// more read of the TLS columns, which only rules with TLS material have.
func (s *SealedStore) LoadRules(ctx context.Context, load alerts.RuleSink) error {
	tls, err := s.db.ListConfigTLS(ctx)
	if err != nil {
		return err
	}
	seen := make(map[string]struct{})
	err = s.db.EachAlertConfig(ctx, func(c supabase.AlertConfig) error {
		seen[c.ID] = struct{}{}
		s.load(load, c, tls[c.ID])
		return nil
	})
	if err != nil {
		return err
	}
	// The TLS columns were read before the rules: a rule created or
	// updated in between may have been read with none, or with old ones.
	// Those whose TLS material differs now are read again, with it.
	after, err := s.db.ListConfigTLS(ctx)
	if err != nil {
		return err
	}
	for id := range seen {
		if tls[id] == after[id] {
			continue
		}
		c, err := s.db.GetAlertConfig(ctx, id)
		if supabase.IsNotFound(err) {
			continue // deleted meanwhile: its change removes it
		}
		if err != nil {
			return err
		}
		s.load(load, c, after[id])
	}
	s.open.Retain(seen)
	return nil
}

// load opens rule c with its TLS material t into load.
func (s *SealedStore) load(load alerts.RuleSink, c supabase.AlertConfig, t supabase.ConfigTLS) {
	spec, err := s.open.Open(rulerow.Spec(c), t)
	if err != nil {
		load.Reject(c.ID, fmt.Errorf("its secret fields cannot be used: %w", err))
		return
	}
	load.Add(spec)
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
	return s.sealed(ctx, cs, s.SupabaseStore.Claim)
}

// ClaimResolves seals the resolved alerts' rendered target URLs and
// claims them (see SupabaseStore.ClaimResolves). An alert whose URL cannot
// be sealed fails alone.
func (s *SealedStore) ClaimResolves(ctx context.Context, cs []alerts.Claim) ([]alerts.ClaimResult, error) {
	return s.sealed(ctx, cs, s.SupabaseStore.ClaimResolves)
}

// sealed seals the claims' target URLs and passes those it could seal to
// claim; results are in the order of cs.
func (s *SealedStore) sealed(ctx context.Context, cs []alerts.Claim,
	claim func(context.Context, []alerts.Claim) ([]alerts.ClaimResult, error)) ([]alerts.ClaimResult, error) {
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
	res, err := claim(ctx, sealed)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		out[at[j]] = r
	}
	return out, nil
}

var _ alerts.ResolveClaimer = (*SealedStore)(nil)
