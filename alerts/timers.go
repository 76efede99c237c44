package alerts

import (
	"container/heap"
	"slices"
	"time"
)

// tracked is a run in a timed state (running or paused): the latest row
// seen, when its current condition began and which rules already handled it.
type tracked struct {
	run     Run
	wf      WorkflowInfo
	project string
	// since is when the condition began: started_at for a running run (or
	// when it was first seen running), when it entered paused for a paused
	// one (the change's commit time, or updated_at when read from the
	// database).
	since time.Time
	// fired lists the rules that already claimed (or may never claim) the
	// current condition, so a timer does not claim twice.
	fired []string
	due   time.Time // zero when no rule waits for this run
	index int       // position in the heap, -1 when not scheduled
}

func (t *tracked) event() Event {
	e, _ := t.run.State.TimerEvent()
	return e
}

func (t *tracked) hasFired(id string) bool { return slices.Contains(t.fired, id) }

// timers holds every tracked run and one min-heap of their due times: a
// single structure for all runs, so thousands of runs cost a map entry and a
// heap slot each, and no goroutine.
type timers struct {
	runs map[string]*tracked
	heap timerHeap
}

func newTimers() *timers { return &timers{runs: map[string]*tracked{}} }

// get returns the tracked run id.
func (t *timers) get(id string) *tracked { return t.runs[id] }

// add starts tracking tr (unscheduled).
func (t *timers) add(tr *tracked) {
	tr.index = -1
	t.runs[tr.run.ID] = tr
}

// remove stops tracking run id.
func (t *timers) remove(id string) {
	tr, ok := t.runs[id]
	if !ok {
		return
	}
	t.schedule(tr, time.Time{})
	delete(t.runs, id)
}

// schedule sets tr's due time; zero unschedules it.
func (t *timers) schedule(tr *tracked, due time.Time) {
	tr.due = due
	switch {
	case due.IsZero() && tr.index >= 0:
		heap.Remove(&t.heap, tr.index)
	case due.IsZero():
	case tr.index >= 0:
		heap.Fix(&t.heap, tr.index)
	default:
		heap.Push(&t.heap, tr)
	}
}

// popDue removes and returns the runs due at or before now, earliest first.
// They are unscheduled: the caller schedules them again.
func (t *timers) popDue(now time.Time) []*tracked {
	var out []*tracked
	for len(t.heap) > 0 && !t.heap[0].due.After(now) {
		tr := heap.Pop(&t.heap).(*tracked)
		tr.due = time.Time{}
		out = append(out, tr)
	}
	return out
}

// len is the number of tracked runs; scheduled the number with a due time.
func (t *timers) len() int       { return len(t.runs) }
func (t *timers) scheduled() int { return len(t.heap) }

// timerHeap orders tracked runs by due time (container/heap).
type timerHeap []*tracked

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *timerHeap) Push(x any) {
	tr := x.(*tracked)
	tr.index = len(*h)
	*h = append(*h, tr)
}

func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	tr := old[n-1]
	old[n-1] = nil
	tr.index = -1
	*h = old[:n-1]
	return tr
}
