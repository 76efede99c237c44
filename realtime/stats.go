package realtime

import (
	"sync"
	"sync/atomic"
	"time"
)

// State is a socket or channel state.
type State string

// Socket states.
const (
	StateDisconnected State = "disconnected" // no socket; waiting to reconnect or not running
	StateConnecting   State = "connecting"   // dialling
	StateConnected    State = "connected"    // socket open
)

// Channel states.
const (
	StateClosed     State = "closed"     // no socket, or not joined yet
	StateJoining    State = "joining"    // phx_join sent, waiting for the reply
	StateJoined     State = "joined"     // join ok, waiting for "Subscribed to PostgreSQL"
	StateSubscribed State = "subscribed" // changes are flowing
	StateErrored    State = "errored"    // join failed or channel lost; rejoin scheduled
)

// StateChange describes one transition passed to Config.OnStateChange.
// Channel is empty for socket transitions. Reason is a short snake_case
// cause (e.g. "heartbeat_timeout", "join_error") or empty.
type StateChange struct {
	Channel string
	From    State
	To      State
	Reason  string
	At      time.Time
}

// Stats is a point-in-time snapshot of the client, see [Client.Stats].
type Stats struct {
	// State is the socket state.
	State State
	// ConnectedAt is when the current session's socket opened (zero when
	// not connected).
	ConnectedAt time.Time
	// Sessions counts successful socket opens.
	Sessions uint64
	// Reconnects counts ended sessions and failed dials by reason, e.g.
	// "heartbeat_timeout", "close_1012", "connection_lost", "dial_error",
	// "handshake_401".
	Reconnects map[string]uint64
	// LastError is the most recent session or channel error, without secrets.
	LastError string
	// LastFrameAt is when the last frame of any kind was received.
	LastFrameAt time.Time
	// FramesReceived counts all received frames; MalformedFrames the ones
	// skipped because they could not be decoded; IgnoredFrames the valid
	// ones of no interest (binary frames, unknown topics or events, changes
	// matching no binding).
	FramesReceived  uint64
	MalformedFrames uint64
	IgnoredFrames   uint64
	// HeartbeatRTT is the round-trip time of the last answered heartbeat.
	HeartbeatRTT time.Duration
	// ChangesDelivered, ChangesDropped and Gaps are totals over all
	// channels; a Gap event may cover several dropped changes.
	ChangesDelivered uint64
	ChangesDropped   uint64
	Gaps             uint64
	// JoinErrors counts failed joins over all channels (error replies,
	// timeouts, binding mismatches, subscription errors).
	JoinErrors uint64
	// Channels holds one entry per ChannelSpec, in configuration order.
	Channels []ChannelStats
}

// ChannelStats is the per-channel part of [Stats].
type ChannelStats struct {
	Name  string
	Topic string
	State State
	// JoinRef is the join_ref of the current channel instance ("" if none).
	JoinRef string
	// Joins counts phx_join pushes; JoinErrors failed ones; Ready counts
	// "Subscribed to PostgreSQL" confirmations.
	Joins            uint64
	JoinErrors       uint64
	Ready            uint64
	ChangesDelivered uint64
	ChangesDropped   uint64
	Gaps             uint64
	LastError        string
}

// statsRecorder holds the mutable counters behind Stats. Hot counters
// touched by the reader are atomic; the rest is guarded by mu.
type statsRecorder struct {
	lastFrame       atomic.Int64 // unix nanoseconds
	framesReceived  atomic.Uint64
	malformedFrames atomic.Uint64
	ignoredFrames   atomic.Uint64
	heartbeatRTT    atomic.Int64 // nanoseconds

	mu          sync.Mutex // guards the fields below
	state       State
	connectedAt time.Time
	sessions    uint64
	reconnects  map[string]uint64
	lastError   string
	channels    []ChannelStats
}

func newStatsRecorder(specs []ChannelSpec) *statsRecorder {
	r := &statsRecorder{
		state:      StateDisconnected,
		reconnects: make(map[string]uint64),
		channels:   make([]ChannelStats, len(specs)),
	}
	for i, s := range specs {
		r.channels[i] = ChannelStats{Name: s.Name, Topic: topicPrefix + s.Name, State: StateClosed}
	}
	return r
}

func (r *statsRecorder) snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{
		State:           r.state,
		ConnectedAt:     r.connectedAt,
		Sessions:        r.sessions,
		Reconnects:      make(map[string]uint64, len(r.reconnects)),
		LastError:       r.lastError,
		FramesReceived:  r.framesReceived.Load(),
		MalformedFrames: r.malformedFrames.Load(),
		IgnoredFrames:   r.ignoredFrames.Load(),
		HeartbeatRTT:    time.Duration(r.heartbeatRTT.Load()),
		Channels:        append([]ChannelStats(nil), r.channels...),
	}
	if ns := r.lastFrame.Load(); ns != 0 {
		s.LastFrameAt = time.Unix(0, ns)
	}
	for k, v := range r.reconnects {
		s.Reconnects[k] = v
	}
	for _, c := range s.Channels {
		s.ChangesDelivered += c.ChangesDelivered
		s.ChangesDropped += c.ChangesDropped
		s.Gaps += c.Gaps
		s.JoinErrors += c.JoinErrors
	}
	return s
}

func (r *statsRecorder) frame(at time.Time) {
	r.lastFrame.Store(at.UnixNano())
	r.framesReceived.Add(1)
}

// update runs f with the lock held.
func (r *statsRecorder) update(f func(r *statsRecorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// channel runs f on channel i's stats with the lock held.
func (r *statsRecorder) channel(i int, f func(c *ChannelStats)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.channels[i])
}
