package alerts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/cenkalti/backoff/v4"
	"time"

	"go.uber.org/zap"
)

// The database is the source of truth; Realtime only makes alerts fast.
// Realtime is at-most-once and drops changes silently (over its quota,
// between subscriptions), so the engine reconciles continuously: every
// ReconcileInterval it reads the watched table by keyset over
// (updated_at, id) from a durable cursor and feeds every row it has not
// already handled live through the same matcher and claims.
//
// The cursor only moves over rows the reconciler itself read and
// processed, never past a row whose alert waits for a retry, and never
// past the horizon: the start of the oldest transaction still in
// progress, which the database reports. A row's updated_at is its
// transaction's start (MeshHook sets it by trigger), so a transaction
// that commits late still lands at or after the cursor. The cursor and a
// lease (so that of several daemons one reconciles) live in
// alert_daemon_state; one call per pass reads the horizon, renews the
// lease and saves the cursor (see Store.Reconcile).

// Cursor is a position in the runs table in (updated_at, id) order, as the
// store returned the values. An empty ID stands before every row updated
// at At.
type Cursor struct {
	At string
	ID string
}

// ReconcileState is the store's answer to one reconcile call.
type ReconcileState struct {
	// Held reports whether the caller holds the reconcile lease.
	Held   bool
	Holder string
	// Cursor is the stored cursor, nil when none is.
	Cursor *Cursor
	// Horizon is the start of the oldest transaction in progress: every
	// row updated before it has been committed, if it ever will be.
	Horizon time.Time
	// Hidden reports that the horizon could not see every session.
	Hidden bool
	// Now is the database's clock.
	Now time.Time
}

const (
	// reconcilePageSize is the rows read per page; reconcileMaxPages the
	// pages of one pass before live changes get a turn.
	reconcilePageSize = 1000
	reconcileMaxPages = 8
	// reconcileSaveEvery is how often a moving cursor is saved.
	reconcileSaveEvery = 5 * time.Second
	// reconcileMaxBackoff caps the wait after failed passes.
	reconcileMaxBackoff = 30 * time.Second
	// While Realtime is on and passes find changes it did not deliver
	// (it is over its quota, say, and skipping whole polls, which nothing
	// in the stream reveals), passes run reconcileLossSpeedup times as
	// often, until none has found any for reconcileLossWindow: a loss
	// seldom comes alone, and the alerts it hides are found sooner. A
	// change a pass found is known lost, not merely late, once Realtime
	// has delivered a change committed after the pass read it (it
	// delivers in commit order), or has delivered nothing at all by the
	// next pass (it is skipping every poll, or down); a suspicion left
	// unconfirmed that long is dropped.
	reconcileLossSpeedup = 4
	reconcileLossWindow  = 30 * time.Second
)

// reconciler is the engine's reconciliation state, owned by the Run
// goroutine.
type reconciler struct {
	holder string
	// cursor is where the next page starts; have is false until it was
	// read from the store (and again after the lease was lost).
	cursor Cursor
	have   bool
	// saved is the cursor last stored, at savedAt.
	saved   Cursor
	savedAt time.Time
	// backoff spaces passes that fail in a row; nil after a success.
	backoff backoff.BackOff
	// lagging is set while the lag is over the alert threshold.
	lagging bool
	// hiddenWarned is set once the hidden-horizon warning was logged.
	hiddenWarned bool
	// active is set while a page is processed: claims won then were found
	// by reconciliation.
	active bool
	// longestPage is the most rows a page has held. A page may be capped
	// below the size asked for (PostgREST's max-rows), so only an empty
	// page proves the end; but a page shorter than one the server has
	// already returned cannot have been capped, so it ends a pass too.
	longestPage int
	// lossUntil is when passes go back to the configured interval after
	// the last one that found changes Realtime did not deliver.
	lossUntil time.Time
	// suspect counts the changes passes found that Realtime had not
	// delivered, read before suspectAt (the database's clock) when
	// Realtime had delivered suspectLive run changes: lost once Realtime
	// delivers a change committed after suspectAt, or none at all. passNow
	// is the database's clock at the current pass's start.
	suspect     int
	suspectAt   time.Time
	suspectLive int64
	passNow     time.Time
	// whole is set while most rows of the pages are new to the engine
	// (Realtime is losing changes, or is off): pages then read whole rows
	// at once instead of the mapping's columns and then the rows to
	// process by id.
	whole bool
}

func newHolderID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// reconcile runs one pass: up to reconcileMaxPages pages. caughtUp is
// false when rows before the horizon are still waiting (the next pass
// should follow at once). A scheduled pass ends on a page shorter than the
// longest the server has returned; an exhaustive one (a catch-up) reads on
// to an empty page, and so learns a page cap lowered meanwhile.
func (e *Engine) reconcile(ctx context.Context, exhaustive bool) (caughtUp bool, err error) {
	now := e.now()
	rc := &e.rec
	var save *Cursor
	if rc.have && rc.cursor != rc.saved && now.Sub(rc.savedAt) >= reconcileSaveEvery {
		c := rc.cursor
		save = &c
	}
	st, err := e.store.Reconcile(ctx, rc.holder, e.opts.ReconcileLease, save)
	if err != nil {
		return false, fmt.Errorf("reconcile: %w", err)
	}
	e.count(func(s *engineStats) { s.reconcileHeld = st.Held })
	if !st.Held {
		rc.lossUntil, rc.suspect = time.Time{}, 0
		// Another daemon reconciles (and reads again whatever this one
		// failed to claim: its cursor has not passed those rows, and they
		// are not in its seen set); when its lease lapses and ours is
		// taken, resume from the cursor it stored.
		rc.have = false
		e.retryFrom = time.Time{}
		return true, nil
	}
	if save != nil {
		rc.saved, rc.savedAt = *save, now
	}
	dbNow := st.Now
	if dbNow.IsZero() {
		dbNow = now
	}
	rc.passNow = dbNow
	e.confirmLoss()
	if !rc.have {
		rc.cursor = Cursor{At: formatCursorTime(dbNow.Add(-e.opts.CatchupMaxLookback))}
		if st.Cursor != nil {
			rc.cursor = *st.Cursor
		}
		rc.saved, rc.savedAt, rc.have = rc.cursor, now, true
	}
	if floor := dbNow.Add(-e.opts.CatchupMaxLookback); cursorTime(rc.cursor).Before(floor) {
		e.log.Warn("reconciliation limited to the maximum lookback", zap.String("cursor", rc.cursor.At),
			zap.Duration("max_lookback", e.opts.CatchupMaxLookback))
		rc.cursor = Cursor{At: formatCursorTime(floor)}
	}
	// Rows whose alerts failed are read again.
	if r := e.retryFrom; !r.IsZero() {
		e.retryFrom = time.Time{}
		if r.Before(cursorTime(rc.cursor)) {
			rc.cursor = Cursor{At: formatCursorTime(r)}
		}
	}
	horizon := st.Horizon
	if horizon.IsZero() || horizon.After(dbNow) {
		horizon = dbNow
	}
	// Leave the newest changes to Realtime, which delivers them within
	// its poll interval.
	horizon = minTime(horizon, dbNow.Add(-e.opts.ReconcileDelay))
	if st.Hidden {
		// Some session's transaction start is hidden from the database
		// function: hold back by the overlap instead.
		if !rc.hiddenWarned {
			rc.hiddenWarned = true
			e.log.Warn("the reconcile horizon cannot see every session (grant pg_read_all_stats to the owner of alert_reconcile); holding back by alerts.catchup_overlap instead",
				zap.Duration("catchup_overlap", e.opts.CatchupOverlap))
		}
		horizon = minTime(horizon, dbNow.Add(-e.opts.CatchupOverlap))
	}
	caughtUp = false
	// The next page is read while this one is matched and claimed.
	fetch := func(after Cursor, whole bool) <-chan runsPage {
		ch := make(chan runsPage, 1)
		go func() {
			rows, err := e.store.RunsPage(ctx, after, horizon, reconcilePageSize, whole)
			ch <- runsPage{after: after, rows: rows, whole: whole, err: err}
		}()
		return ch
	}
	pending := fetch(rc.cursor, rc.whole)
	defer func() {
		if pending != nil {
			<-pending // no read outlives the pass
		}
	}()
	prevShort := 0 // length of the previous page, when it was short but not the last
	for i := range reconcileMaxPages {
		pg := <-pending
		pending = nil
		if pg.err != nil {
			return false, fmt.Errorf("reconcile: read runs after %s: %w", pg.after.At, pg.err)
		}
		rows := pg.rows
		// A page shorter than the longest yet is the last: no page follows
		// (except in an exhaustive pass, which reads on to an empty page).
		if prevShort > 0 && len(rows) > 0 {
			// The page before was shorter than the longest yet, and was not
			// the last: the server's cap was lowered to its length.
			rc.longestPage = prevShort
		}
		short := len(rows) > 0 && len(rows) < rc.longestPage
		rc.longestPage = max(rc.longestPage, len(rows))
		prevShort = 0
		if short && exhaustive {
			prevShort, short = len(rows), false
		}
		if len(rows) > 0 && !short && i+1 < reconcileMaxPages {
			if last, ok := cursorOf(rows[len(rows)-1], e.opts.Mapping); ok {
				pending = fetch(last, rc.whole)
			}
		}
		next, err := e.reconcileRows(ctx, rows, pg.whole)
		if err != nil {
			return false, fmt.Errorf("reconcile: %w", err)
		}
		if len(rows) == 0 {
			// Every row before the horizon was read. (Only an empty page
			// says so: a server may cap pages below the size asked for,
			// as PostgREST's max-rows does.)
			rc.cursor = Cursor{At: formatCursorTime(horizon)}
			caughtUp = true
			break
		}
		if next == (Cursor{}) {
			// No row of the page was readable: move past them by their
			// raw keys, or stay.
			if k, ok := cursorOf(rows[len(rows)-1], e.opts.Mapping); ok {
				next = k
			} else {
				next = rc.cursor
			}
		}
		rc.cursor = next
		if short {
			// Every row before the horizon was read; the cursor stays on
			// the last (the next pass's empty page moves it on).
			caughtUp = true
			break
		}
		if pending == nil && i+1 < reconcileMaxPages {
			pending = fetch(rc.cursor, rc.whole) // the last row had no usable key
		}
	}
	// Never past a row whose alert waits for a retry.
	if w := e.retryBound(); !w.IsZero() && w.Before(cursorTime(rc.cursor)) {
		rc.cursor = Cursor{At: formatCursorTime(w)}
	}
	lag := max(dbNow.Sub(cursorTime(rc.cursor)), 0)
	e.count(func(s *engineStats) {
		s.reconciles++
		s.reconcileLag = lag
	})
	e.checkLag(lag)
	return caughtUp, nil
}

// runsPage is one page of the runs table, read after a position.
type runsPage struct {
	after Cursor
	rows  []map[string]any
	whole bool // the rows carry every column
	err   error
}

// reconcileRows processes the rows of one page that were not handled live
// and returns the page's last position. A page read with the mapping's
// columns only (whole false) has the rows to process read whole, in one
// request.
func (e *Engine) reconcileRows(ctx context.Context, rows []map[string]any, wasWhole bool) (Cursor, error) {
	var last Cursor
	var fresh []Run
	var rowsOf []map[string]any
	for _, row := range rows {
		run, err := e.opts.Mapping.RunFromRow(row)
		if err != nil {
			e.log.Warn("run row unreadable", zap.Error(err))
			continue
		}
		if k, ok := cursorOf(row, e.opts.Mapping); ok {
			last = k
		}
		if e.seen.has(run.ID, run.UpdatedAt) {
			continue
		}
		fresh = append(fresh, run)
		rowsOf = append(rowsOf, row)
	}
	e.count(func(s *engineStats) {
		s.reconcileRows += int64(len(rows))
		s.catchupRows += int64(len(fresh))
	})
	// A page mostly new to the engine is cheaper read whole at once.
	e.rec.whole = len(rows) > 0 && 2*len(fresh) > len(rows)
	if len(fresh) == 0 {
		return last, nil
	}
	if e.live {
		// Suspected lost, unless the engine is retrying them itself.
		n := 0
		for _, r := range fresh {
			if _, retrying := e.pendingRows[r.ID]; !retrying {
				n++
			}
		}
		if n > 0 {
			e.rec.suspect += n
			e.rec.suspectAt, e.rec.suspectLive = e.rec.passNow, e.liveChanges
		}
	}
	var byID map[string]map[string]any
	if !wasWhole {
		ids := make([]string, len(fresh))
		for i, r := range fresh {
			ids[i] = r.ID
		}
		whole, err := e.store.RunsByID(ctx, ids)
		if err != nil {
			return last, fmt.Errorf("read %d runs: %w", len(ids), err)
		}
		byID = make(map[string]map[string]any, len(whole))
		for _, w := range whole {
			if id := scalarString(w[e.opts.Mapping.IDColumn]); id != "" {
				byID[id] = w
			}
		}
	}
	e.rec.active = true
	defer func() { e.rec.active = false }()
	for i, run := range fresh {
		row := rowsOf[i]
		if w, ok := byID[run.ID]; ok && !wasWhole {
			if wr, err := e.opts.Mapping.RunFromRow(w); err == nil && wr.UpdatedAt.Equal(run.UpdatedAt) {
				row = w // the same version, with every column
			}
		}
		occurred := run.UpdatedAt
		if occurred.IsZero() {
			occurred = e.now()
		}
		e.processRow(ctx, row, occurred, time.Time{})
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
	}
	// Claim before the cursor can move past these rows.
	e.flush(ctx)
	e.runChanges += len(fresh)
	e.lastRunChange = e.now()
	return last, nil
}

// confirmLoss turns the changes earlier passes found into a known loss
// once Realtime has delivered a change committed after they were read, or
// nothing at all since, and drops a suspicion older than the loss window.
// (Delivering only older changes, Realtime is behind, not losing.)
func (e *Engine) confirmLoss() {
	rc := &e.rec
	switch {
	case rc.suspect == 0:
	case e.liveCommitted.After(rc.suspectAt), e.liveChanges == rc.suspectLive:
		e.noteRealtimeLoss(rc.suspect)
		rc.suspect = 0
	case rc.passNow.Sub(rc.suspectAt) > reconcileLossWindow:
		rc.suspect = 0
	}
}

// noteRealtimeLoss records that passes found n changes Realtime did not
// deliver, so that passes run more often for a while.
func (e *Engine) noteRealtimeLoss(n int) {
	now := e.now()
	if now.After(e.rec.lossUntil) {
		e.log.Info("reconciliation found changes Realtime did not deliver; reconciling more often for a while",
			zap.Int("changes", n), zap.Duration("reconcile_every", e.lossInterval()), zap.Duration("for", reconcileLossWindow))
	}
	e.rec.lossUntil = now.Add(reconcileLossWindow)
}

// lossInterval is the interval between passes while Realtime loses changes.
func (e *Engine) lossInterval() time.Duration {
	return e.opts.ReconcileInterval / reconcileLossSpeedup
}

// reconcileUntilCaughtUp runs passes until every row before the horizon
// was read (start-up).
func (e *Engine) reconcileUntilCaughtUp(ctx context.Context) error {
	for {
		done, err := e.reconcile(ctx, true)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// catchUp reconciles until every row before the horizon was read, then
// rebuilds the timers from the database: at start-up, after a
// (re)subscription or a gap, and periodically.
func (e *Engine) catchUp(ctx context.Context) error {
	if err := e.reconcileUntilCaughtUp(ctx); err != nil {
		return err
	}
	if err := e.rebuildTimers(ctx); err != nil {
		return fmt.Errorf("rebuild timers: %w", err)
	}
	e.count(func(s *engineStats) { s.catchups++ })
	e.log.Info("catch-up done", zap.String("cursor", e.rec.cursor.At), zap.Int("timed_runs", e.timers.len()))
	return nil
}

// reconcileStep runs one scheduled pass and returns when the next is due.
func (e *Engine) reconcileStep(ctx context.Context) time.Duration {
	done, err := e.reconcile(ctx, false)
	e.count(func(s *engineStats) {
		s.reconcileErr = ""
		if err != nil {
			s.reconcileErr = err.Error()
		}
	})
	if err != nil {
		if e.rec.backoff == nil {
			e.rec.backoff = backoff.NewExponentialBackOff(backoff.WithInitialInterval(2*e.opts.ReconcileInterval),
				backoff.WithMaxInterval(reconcileMaxBackoff), backoff.WithMaxElapsedTime(0))
		}
		wait := e.rec.backoff.NextBackOff()
		e.log.Error("reconciliation failed; retrying", zap.Error(err), zap.Duration("retry_in", wait))
		return wait
	}
	e.rec.backoff = nil
	if !done {
		return 0
	}
	if e.now().Before(e.rec.lossUntil) {
		return e.lossInterval()
	}
	return e.opts.ReconcileInterval
}

// checkLag logs when the reconciler falls behind by more than the alert
// threshold, and when it has caught up again.
func (e *Engine) checkLag(lag time.Duration) {
	limit := e.opts.ReconcileLagAlert
	switch {
	case limit > 0 && lag > limit && !e.rec.lagging:
		e.rec.lagging = true
		e.log.Error("reconciliation is lagging: changes Realtime missed are alerted late", zap.Duration("lag", lag),
			zap.Duration("threshold", limit), zap.String("cursor", e.rec.cursor.At))
	case e.rec.lagging && lag <= limit:
		e.rec.lagging = false
		e.log.Info("reconciliation caught up", zap.Duration("lag", lag))
	}
}

// markRetry makes the reconciler read again from t (a row's updated_at)
// because some alert of that row could not be claimed or a change could
// not be read. Until that succeeds the cursor stays at or before t, so a
// restart retries too.
func (e *Engine) markRetry(t time.Time) {
	if t.IsZero() {
		t = e.now()
	}
	if e.retryFrom.IsZero() || t.Before(e.retryFrom) {
		e.retryFrom = t
	}
}

// retryBound is the oldest updated_at the cursor may not pass: a row
// whose alerts wait for a retry.
func (e *Engine) retryBound() time.Time {
	w := e.retryFrom
	older := func(run Run, occurred time.Time) {
		t := run.UpdatedAt
		if t.IsZero() {
			t = occurred
		}
		if w.IsZero() || t.Before(w) {
			w = t
		}
	}
	for _, p := range e.pending {
		older(p.run, p.occurred)
	}
	for _, p := range e.pendingRows {
		older(p.run, p.occurred)
	}
	return w
}

// cursorOf is a row's position, as the store returned its values.
func cursorOf(row map[string]any, m Mapping) (Cursor, bool) {
	at, ok := row[m.UpdatedAtColumn].(string)
	if !ok || at == "" {
		return Cursor{}, false
	}
	id := scalarString(row[m.IDColumn])
	if id == "" {
		return Cursor{}, false
	}
	return Cursor{At: at, ID: id}, true
}

// cursorTime is a cursor's time; zero when it does not parse.
func cursorTime(c Cursor) time.Time {
	t, err := ParseTimestamp(c.At)
	if err != nil {
		return time.Time{}
	}
	return t
}

// formatCursorTime formats a time as a cursor's At: UTC, microseconds
// (the database's precision; truncating keeps the bound inclusive).
func formatCursorTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z07:00")
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// seenRuns remembers the newest (run id, updated_at) versions the engine
// processed, in bounded memory, so that the reconciler does not claim again
// what Realtime already delivered. Forgetting early costs only a claim
// round trip (claims are idempotent).
type seenRuns struct {
	m    map[string]seenEntry
	ring []string
	next int
}

type seenEntry struct {
	at   int64 // updated_at, µs
	slot int
}

func newSeenRuns(size int) *seenRuns {
	return &seenRuns{m: make(map[string]seenEntry, size), ring: make([]string, size)}
}

func (s *seenRuns) add(id string, at time.Time) {
	if id == "" || at.IsZero() {
		return
	}
	if old := s.ring[s.next]; old != "" {
		if e, ok := s.m[old]; ok && e.slot == s.next {
			delete(s.m, old)
		}
	}
	s.m[id] = seenEntry{at: at.UnixMicro(), slot: s.next}
	s.ring[s.next] = id
	s.next = (s.next + 1) % len(s.ring)
}

func (s *seenRuns) has(id string, at time.Time) bool {
	e, ok := s.m[id]
	return ok && !at.IsZero() && e.at == at.UnixMicro()
}

func (s *seenRuns) forget(id string, at time.Time) {
	if e, ok := s.m[id]; ok && e.at == at.UnixMicro() {
		delete(s.m, id)
	}
}
