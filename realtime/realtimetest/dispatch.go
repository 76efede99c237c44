package realtimetest

import (
	"context"
	"slices"
	"strings"
)

// Publish delivers a synthetic change to every subscribed channel whose
// bindings match it, exactly as if it had been decoded from the database,
// except that row level security and column privileges are not consulted
// (every subscriber sees it). Faults set with DropChanges and TruncateNext
// apply. Publish returns after the frames are queued on every connection.
func (s *Server) Publish(c Change) error {
	if err := c.validate(); err != nil {
		return err
	}
	return s.deliver(context.Background(), &c)
}

// deliver fans one change out to the subscribed channels: one frame per
// channel (and per distinct `select` list) listing the ids of every
// matching binding. Deliveries are serialised so every client sees changes
// in publication (commit) order.
func (s *Server) deliver(ctx context.Context, c *Change) error {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()

	if s.faults.takeDrop() {
		s.stats.dropped.Add(1)
		return nil
	}
	p, err := prepareChange(c, s.opts.MaxRecordBytes, s.faults.takeTruncate())
	if err != nil {
		return err
	}
	be := s.currentBackend()
	accessByClaims := make(map[string]access)
	accessFor := func(claims tokenClaims) access {
		if c.src == nil || be == nil {
			return fullAccess
		}
		key := claims.Role + "\x00" + string(claims.Raw)
		if acc, ok := accessByClaims[key]; ok {
			return acc
		}
		acc := be.authorize(ctx, c, claims)
		accessByClaims[key] = acc
		return acc
	}

	for _, sess := range s.snapshotSessions() {
		for _, t := range sess.subscribedTargets() {
			var candidates []binding
			for _, b := range t.bindings {
				if b.ParseError == "" && b.matchesRelation(p.Schema, p.Table) && b.matchesEvent(p.Type) {
					candidates = append(candidates, b)
				}
			}
			if len(candidates) == 0 {
				continue
			}
			acc := accessFor(t.claims)
			var matched []binding
			for _, b := range candidates {
				// Error rows go to every subscription of the role; otherwise
				// the filters decide.
				if acc.Error != "" || p.matches(b) {
					matched = append(matched, b)
				}
			}
			if len(matched) == 0 || (!acc.Visible && acc.Error == "") {
				continue
			}
			for _, g := range groupBySelect(matched) {
				data := p.data(acc, g.sel)
				var m message
				if t.newAPI {
					m = message{Topic: t.ch.topic, Event: "postgres_changes", Payload: mustJSON(struct {
						IDs  []int64    `json:"ids"`
						Data changeData `json:"data"`
					}{g.ids, data})}
				} else {
					m = message{Topic: t.ch.topic, Event: p.Type, Payload: mustJSON(data)}
				}
				if sess.deliver(t.ch, m) {
					s.stats.delivered.Add(1)
				}
			}
		}
	}
	return nil
}

// selectGroup is the bindings of one channel that share a `select` list.
type selectGroup struct {
	sel []string
	ids []int64
}

func groupBySelect(bs []binding) []selectGroup {
	var out []selectGroup
	index := make(map[string]int)
	for _, b := range bs {
		key := "\x00"
		if b.Select != nil {
			sorted := slices.Sorted(slices.Values(b.Select))
			key = strings.Join(sorted, "\x00") + "\x01"
		}
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, selectGroup{sel: b.Select})
		}
		out[i].ids = append(out[i].ids, b.ID)
	}
	return out
}
