package alerts

import "runtime/debug"

// Rebuilding the rule cache (a full load, or a bulk edit streaming in over
// Realtime) allocates many times the cache's size in short-lived garbage:
// decoded rows, sealed values, change records. With the default GC target
// the heap grows to twice its live size between collections, and the
// cache's long-lived objects end up spread over all of that: after the
// rebuild, most heap spans hold a few rules each and cannot be handed back
// to the OS. Collecting sooner while the cache is rebuilt keeps its objects
// in fewer spans, so the resident set afterwards stays close to the live
// heap (with 100,000 rules: about 85 MiB instead of about 105 MiB).

// rebuildGCPercent is the GC target while the cache is rebuilt.
const rebuildGCPercent = 25

// bulkRuleChanges is how many rule changes since memory was last released
// make a bulk edit: the GC target is lowered from then on, and once the
// edit has been quiet for a tick the garbage it left is handed back to the
// OS.
const bulkRuleChanges = 100

// burstRunChanges is how many run changes since memory was last released
// make a burst whose memory is handed back to the OS once it is quiet.
const burstRunChanges = 10000

// rebuildMemory lowers the GC target for the duration of a rebuild and
// releases memory at its end. It is used from the engine's goroutine only.
type rebuildMemory struct {
	active bool
	saved  int  // the GC target before the rebuild
	set    bool // whether begin changed the target (it never raises it)
	// setGCPercent and release are debug.SetGCPercent and
	// debug.FreeOSMemory, replaced in tests.
	setGCPercent func(int) int
	release      func()
}

func newRebuildMemory() *rebuildMemory {
	return &rebuildMemory{setGCPercent: debug.SetGCPercent, release: debug.FreeOSMemory}
}

// begin lowers the GC target to rebuildGCPercent unless it is lower already
// or the collector is off (GOGC=off: the operator runs on a memory limit).
func (m *rebuildMemory) begin() {
	if m.active {
		return
	}
	m.active = true
	m.saved = m.setGCPercent(rebuildGCPercent)
	m.set = m.saved > rebuildGCPercent
	if !m.set {
		m.setGCPercent(m.saved)
	}
}

// end hands the rebuild's garbage back to the OS and restores the GC target.
func (m *rebuildMemory) end() {
	m.release()
	if m.active && m.set {
		m.setGCPercent(m.saved)
	}
	m.active, m.set = false, false
}
