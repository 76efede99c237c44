package realtimetest

import (
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// This file models how Realtime's replication poller
// (lib/extensions/postgres_cdc_rls/replication_poller.ex) reads its slot,
// for the changes a CDC decodes.

const (
	// pollIdleMultiplier stretches the wait after an empty poll (Realtime's
	// @idle_multiplier).
	pollIdleMultiplier = 5
	// pollJitterMin and pollJitterMax bound the jitter, in whole
	// milliseconds, added after a poll whose changes had no subscriber
	// (Enum.random(50..100)).
	pollJitterMin = 50 * time.Millisecond
	pollJitterMax = 100 * time.Millisecond
	// pollDrainWait is how long a poll waits for the next message of the
	// replication stream before it takes the slot to be drained. A change
	// committed just before a poll may so come in the next one, as with a
	// commit racing Realtime's list_changes query.
	pollDrainWait = 5 * time.Millisecond
)

// Poll describes one poll of the replication stream by a CDC: what
// Realtime's replication poller reads with one list_changes query.
type Poll struct {
	// Start is when the poll began reading.
	Start time.Time
	// Changes is the number of row changes it read (and so consumed).
	Changes int
	// Delivered is the number of those that went to at least one
	// subscription (Realtime's processed count); 0 when Skipped.
	Delivered int
	// Skipped reports that the changes were dropped whole because the event
	// rate was at or over MaxEventsPerSecond. Empty polls are never Skipped.
	Skipped bool
	// Next is the wait until the next poll reads.
	Next time.Duration
}

// pollBatch is the state of the poll in progress.
type pollBatch struct {
	start     time.Time
	decided   bool // skip is set
	skip      bool
	changes   int
	delivered int
}

// skipping reports whether the batch's changes are skipped, deciding it at
// the first change: Realtime checks the rate counter once per poll, after
// its query returned.
func (b *pollBatch) skipping(r *rateCounter) bool {
	if !b.decided {
		b.decided = true
		b.skip = r.limited()
	}
	return b.skip
}

// pollStats are the counters behind Polls, SkippedPolls and SkippedChanges.
type pollStats struct {
	polls          atomic.Int64
	skippedPolls   atomic.Int64
	skippedChanges atomic.Int64
}

// polling reports whether changes are handed out in polls (PollInterval is
// not negative).
func (s *Server) polling() bool { return s.opts.PollInterval > 0 }

// endPoll records a finished poll and returns the wait until the next one,
// following Realtime's scheduling: at once after a poll that had changes
// for subscribers (or skipped changes), PollInterval plus jitter after one
// whose changes had no subscriber, 5 × PollInterval after an empty one.
func (s *Server) endPoll(b *pollBatch) time.Duration {
	var next time.Duration
	if s.polling() {
		switch {
		case b.delivered > 0 || (b.skip && b.changes > 0):
		case b.changes > 0:
			jitterMs := rand.IntN(int((pollJitterMax-pollJitterMin)/time.Millisecond) + 1)
			next = s.opts.PollInterval + pollJitterMin + time.Duration(jitterMs)*time.Millisecond
		default:
			next = s.opts.PollInterval * pollIdleMultiplier
		}
		next += s.opts.PollQueryTime
	}
	s.polls.polls.Add(1)
	skipped := b.skip && b.changes > 0
	if skipped {
		s.polls.skippedPolls.Add(1)
		s.polls.skippedChanges.Add(int64(b.changes))
		s.log.Debug("postgres changes skipped: rate limited", zap.Int("changes", b.changes))
	}
	if s.opts.OnPoll != nil {
		s.opts.OnPoll(Poll{Start: b.start, Changes: b.changes, Delivered: b.delivered, Skipped: skipped, Next: next})
	}
	return next
}

// Polls returns the number of polls CDCs made (with polling off, one per
// transaction).
func (s *Server) Polls() int { return int(s.polls.polls.Load()) }

// SkippedPolls returns the number of polls whose changes were skipped
// because the event rate was at or over MaxEventsPerSecond.
func (s *Server) SkippedPolls() int { return int(s.polls.skippedPolls.Load()) }

// SkippedChanges returns the number of changes consumed by skipped polls:
// changes no client was sent or told about.
func (s *Server) SkippedChanges() int { return int(s.polls.skippedChanges.Load()) }
