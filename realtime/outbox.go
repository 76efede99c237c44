package realtime

import "time"

// outbox delivers events to the consumer.
//
// Changes go into the bounded events channel, waiting up to wait for room
// (the caller, and so the socket, is held meanwhile), or are dropped and
// turned into a pending Gap. Control events (Ready, Gap) are never dropped:
// they wait in pending, coalesced per channel, until the consumer makes
// room. Pending control events are always delivered before later changes,
// so a change is also dropped (and counted) while control events are still
// waiting. An outbox is used only by the goroutine running Client.Run.
type outbox struct {
	events  chan Event
	pending []Event // Ready and Gap values, oldest first
	wait    time.Duration
	done    <-chan struct{} // ends a wait (Client.Run's context)
}

func newOutbox(size int, wait time.Duration) *outbox {
	return &outbox{events: make(chan Event, size), wait: wait}
}

// flush delivers pending control events while there is room and reports
// whether none are left.
func (o *outbox) flush() bool {
	for len(o.pending) > 0 {
		select {
		case o.events <- o.pending[0]:
			o.popFront()
		default:
			return false
		}
	}
	return true
}

// sendCase returns the channel and value for a select send case that
// delivers the oldest pending control event, or a nil channel when nothing
// is pending. After the case fires, call popFront.
func (o *outbox) sendCase() (chan<- Event, Event) {
	if len(o.pending) == 0 {
		return nil, nil
	}
	return o.events, o.pending[0]
}

func (o *outbox) popFront() {
	o.pending[0] = nil
	o.pending = o.pending[1:]
	if len(o.pending) == 0 {
		o.pending = nil
	}
}

// ready queues a Ready event for channel, replacing one already pending for
// the same channel.
func (o *outbox) ready(channel string, at time.Time) {
	for i, ev := range o.pending {
		if r, ok := ev.(Ready); ok && r.Channel == channel {
			o.pending[i] = Ready{Channel: channel, At: at}
			o.flush()
			return
		}
	}
	o.pending = append(o.pending, Ready{Channel: channel, At: at})
	o.flush()
}

// change delivers c if there is room and no control event is waiting. It
// reports whether c was delivered and, if it was dropped, whether a new Gap
// was started (as opposed to joining a pending one).
func (o *outbox) change(c *Change) (delivered, newGap bool) {
	if o.flush() {
		select {
		case o.events <- c:
			return true, false
		default:
		}
		if o.wait > 0 {
			t := time.NewTimer(o.wait)
			select {
			case o.events <- c:
				t.Stop()
				return true, false
			case <-t.C:
			case <-o.done:
				t.Stop()
			}
		}
	}
	for i, ev := range o.pending {
		if g, ok := ev.(Gap); ok && g.Channel == c.Channel {
			g.Dropped++
			o.pending[i] = g
			return false, false
		}
	}
	o.pending = append(o.pending, Gap{Channel: c.Channel, Dropped: 1, At: c.ReceivedAt})
	return false, true
}
