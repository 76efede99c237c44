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
	_, err := s.deliver(context.Background(), &c)
	return err
}

// dispatchScratch is the state deliver reuses from change to change, so
// that a change reaching one subscriber costs few allocations. deliverMu
// guards it.
type dispatchScratch struct {
	sessions   []*session
	targets    []channelTarget
	candidates []binding
	matched    []binding
	ids        []int64
	groups     []selectGroup
	access     []claimsAccess
	prepared   preparedChange
	full       []byte // data for full access without select
	data       []byte // data for anything else
}

// claimsAccess is the access computed for one set of claims.
type claimsAccess struct {
	key string
	acc access
}

// deliver fans one change out to the subscribed channels: one frame per
// channel (and per distinct `select` list) listing the ids of every
// matching binding. Deliveries are serialised so every client sees changes
// in publication (commit) order. It returns the number of subscriptions
// (bindings) the change went to, which is what Realtime's event rate counts.
func (s *Server) deliver(ctx context.Context, c *Change) (int, error) {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()

	if s.faults.takeDrop() {
		s.stats.dropped.Add(1)
		return 0, nil
	}
	sc := &s.scratch
	defer sc.release()
	p := &sc.prepared
	if err := p.prepare(c, s.opts.MaxRecordBytes, s.faults.takeTruncate()); err != nil {
		return 0, err
	}
	subscriptions := 0
	be := s.currentBackend()
	sc.access = sc.access[:0]
	accessFor := func(claims tokenClaims) access {
		if c.src == nil || be == nil {
			return fullAccess
		}
		key := claims.cacheKey()
		for _, ca := range sc.access {
			if ca.key == key {
				return ca.acc
			}
		}
		acc := be.authorize(ctx, c, claims).withAllColumns(p.Columns)
		sc.access = append(sc.access, claimsAccess{key: key, acc: acc})
		return acc
	}
	fullBuilt := false
	dataFor := func(acc access, sel []string) []byte {
		if acc.Error == "" && acc.Columns == nil && sel == nil {
			if !fullBuilt {
				sc.full = p.appendData(sc.full[:0], acc, nil)
				fullBuilt = true
			}
			return sc.full
		}
		sc.data = p.appendData(sc.data[:0], acc, sel)
		return sc.data
	}

	sc.sessions = s.appendSessions(sc.sessions[:0])
	for _, sess := range sc.sessions {
		sc.targets = sess.appendSubscribedTargets(sc.targets[:0])
		for _, t := range sc.targets {
			sc.candidates = sc.candidates[:0]
			for _, b := range t.bindings {
				if b.ParseError == "" && b.matchesRelation(p.Schema, p.Table) && b.matchesEvent(p.Type) {
					sc.candidates = append(sc.candidates, b)
				}
			}
			if len(sc.candidates) == 0 {
				continue
			}
			acc := accessFor(t.claims)
			sc.matched = sc.matched[:0]
			for _, b := range sc.candidates {
				// Error rows go to every subscription of the role; otherwise
				// the filters decide.
				if acc.Error != "" || p.matches(b) {
					sc.matched = append(sc.matched, b)
				}
			}
			if len(sc.matched) == 0 || (!acc.Visible && acc.Error == "") {
				continue
			}
			subscriptions += len(sc.matched)
			for _, g := range sc.groupBySelect() {
				frame := changeFrame(sess.codec, t.ch.topic, p.Type, t.newAPI, g.ids, dataFor(acc, g.sel))
				if sess.deliverFrame(t.ch, frame) {
					s.stats.delivered.Add(1)
				}
			}
		}
	}
	return subscriptions, nil
}

// release drops the references the scratch holds after a delivery, so
// that the change, closed sessions and channels can go.
func (sc *dispatchScratch) release() {
	sc.prepared = preparedChange{}
	clear(sc.sessions)
	clear(sc.targets)
	clear(sc.candidates)
	clear(sc.matched)
	clear(sc.access)
}

// changeFrame encodes the frame of a change of type typ for a channel:
// with the new API event postgres_changes and payload {"ids":[...],"data":
// data}, with the legacy one event typ and payload data.
func changeFrame(c codec, topic, typ string, newAPI bool, ids []int64, data []byte) []byte {
	event := typ
	if newAPI {
		event = "postgres_changes"
	}
	frame := make([]byte, 0, len(data)+len(topic)+len(event)+12*len(ids)+48)
	frame = c.appendHead(frame, nil, nil, topic, event)
	frame = appendPayload(frame, newAPI, ids, data)
	return c.appendTail(frame, nil)
}

// selectGroup is the bindings of one channel that share a `select` list.
type selectGroup struct {
	sel []string
	ids []int64
}

// groupBySelect groups sc.matched by `select` list. When none has one (the
// usual case) the single group reuses sc.ids.
func (sc *dispatchScratch) groupBySelect() []selectGroup {
	for _, b := range sc.matched {
		if b.Select != nil {
			return groupBySelect(sc.matched)
		}
	}
	sc.ids = sc.ids[:0]
	for _, b := range sc.matched {
		sc.ids = append(sc.ids, b.ID)
	}
	sc.groups = append(sc.groups[:0], selectGroup{ids: sc.ids})
	return sc.groups
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
