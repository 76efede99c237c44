package logging

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// CollapseWindow is how long a repeated warning or error is held back after
// it was written: within it, the same line is counted instead of written.
const CollapseWindow = 10 * time.Second

// RepeatedKey is the field of a line written for several occurrences of the
// same warning: how many times it occurred since the line before it was
// written (this one included). Its other fields are those of the last
// occurrence.
const RepeatedKey = "repeated"

// alertKeys are fields that tie a line to one alert or run: such lines are
// never collapsed (every delivery outcome matters).
var alertKeys = map[string]bool{"alert_id": true, "run_id": true, "webhook_id": true, "rule_id": true}

// collapser is shared by a collapsing core and the cores derived from it
// with With.
type collapser struct {
	window time.Duration
	mu     sync.Mutex
	lines  map[string]*repeat
	writes int // since the last sweep of idle lines
}

// repeat is the state of one line (see collapseKey).
type repeat struct {
	until  time.Time // occurrences before it are counted, not written
	count  int       // counted and not yet written
	last   zapcore.Entry
	fields []zapcore.Field
	core   zapcore.Core // writes the summary, with the With fields of the last occurrence
	timer  *time.Timer  // writes the summary at until, while count > 0
}

// collapseCore collapses repeated warnings and errors: the first occurrence
// of a line is written; the same line occurring again within window is
// counted, and one line with "repeated": n stands for them when the window
// ends (or at Sync). A line is the same when its logger, level, message and
// its string and bool fields are; numbers, durations, times and errors may
// differ (an attempt count, a backoff, the error text), and the last
// occurrence's are written. Lines about one alert or run (alert_id, run_id,
// webhook_id or rule_id among their fields) are never collapsed, nor are
// lines below warn. During a database outage the REST client's "request
// failed; retrying" made 255 of 427 lines a minute; collapsed, it makes one
// per operation every window.
type collapseCore struct {
	zapcore.Core
	c       *collapser
	context []zapcore.Field // the With fields, for the key
	exempt  bool            // a With field ties every line to an alert
}

func newCollapseCore(inner zapcore.Core, window time.Duration) *collapseCore {
	return &collapseCore{Core: inner, c: &collapser{window: window, lines: map[string]*repeat{}}}
}

func (cc *collapseCore) With(fields []zapcore.Field) zapcore.Core {
	exempt := cc.exempt
	for _, f := range fields {
		exempt = exempt || alertKeys[f.Key]
	}
	return &collapseCore{Core: cc.Core.With(fields), c: cc.c,
		context: append(append([]zapcore.Field(nil), cc.context...), fields...), exempt: exempt}
}

func (cc *collapseCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if cc.Enabled(ent.Level) {
		return ce.AddCore(ent, cc)
	}
	return ce
}

func (cc *collapseCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	if ent.Level < zapcore.WarnLevel || ent.Level > zapcore.ErrorLevel || cc.exempt {
		return cc.Core.Write(ent, fields)
	}
	for _, f := range fields {
		if alertKeys[f.Key] {
			return cc.Core.Write(ent, fields)
		}
	}
	write, fields := cc.c.admit(collapseKey(ent, cc.context, fields), ent, fields, cc.Core)
	if !write {
		return nil
	}
	return cc.Core.Write(ent, fields)
}

// Sync writes the summaries of the lines being counted, then syncs.
func (cc *collapseCore) Sync() error {
	cc.c.flushAll()
	return cc.Core.Sync()
}

// admit reports whether an occurrence of the line key is to be written now,
// and with which fields; if not, it is counted.
func (c *collapser) admit(key string, ent zapcore.Entry, fields []zapcore.Field, core zapcore.Core) (bool, []zapcore.Field) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(ent.Time)
	r := c.lines[key]
	if r == nil || !ent.Time.Before(r.until) {
		if r != nil && r.count > 0 {
			// The window ended and its summary is due (its timer has not
			// run yet): this occurrence is written and stands for them.
			fields = append(fields[:len(fields):len(fields)], zap.Int(RepeatedKey, r.count+1))
			if r.timer != nil {
				r.timer.Stop()
			}
		}
		c.lines[key] = &repeat{until: ent.Time.Add(c.window)}
		return true, fields
	}
	r.count++
	r.last, r.fields, r.core = ent, append([]zapcore.Field(nil), fields...), core
	if r.timer == nil {
		r.timer = time.AfterFunc(r.until.Sub(ent.Time), func() { c.flush(key, r) })
	}
	return false, nil
}

// flush writes the summary of r, if it still has occurrences to stand for.
func (c *collapser) flush(key string, r *repeat) {
	c.mu.Lock()
	if c.lines[key] != r || r.count == 0 {
		c.mu.Unlock()
		return
	}
	ent, fields, core := r.last, append(r.fields, zap.Int(RepeatedKey, r.count)), r.core
	r.count, r.timer, r.fields = 0, nil, nil
	// The summary opens a new window: a warning that keeps recurring is
	// written once per window, with its count.
	r.until = time.Now().Add(c.window)
	c.mu.Unlock()
	_ = core.Write(ent, fields)
}

// flushAll writes every pending summary now.
func (c *collapser) flushAll() {
	c.mu.Lock()
	var due []func()
	for key, r := range c.lines {
		if r.count > 0 {
			if r.timer != nil {
				r.timer.Stop()
				r.timer = nil
			}
			due = append(due, func() { c.flush(key, r) })
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// sweep forgets lines whose window has passed with nothing counted, now
// and then, so that lines that never repeat do not pile up.
func (c *collapser) sweep(now time.Time) {
	if c.writes++; c.writes < 256 {
		return
	}
	c.writes = 0
	for key, r := range c.lines {
		if r.count == 0 && r.timer == nil && !now.Before(r.until) {
			delete(c.lines, key)
		}
	}
}

// collapseKey identifies a line: logger, level, message, and the string and
// bool fields (of With, then of the call).
func collapseKey(ent zapcore.Entry, context, fields []zapcore.Field) string {
	var b strings.Builder
	b.WriteString(ent.LoggerName)
	b.WriteByte(0)
	b.WriteString(ent.Level.String())
	b.WriteByte(0)
	b.WriteString(ent.Message)
	for _, fs := range [][]zapcore.Field{context, fields} {
		for _, f := range fs {
			switch f.Type {
			case zapcore.StringType:
				b.WriteByte(0)
				b.WriteString(f.Key)
				b.WriteByte('=')
				b.WriteString(f.String)
			case zapcore.BoolType:
				b.WriteByte(0)
				b.WriteString(f.Key)
				b.WriteByte('=')
				b.WriteString(strconv.FormatBool(f.Integer == 1))
			}
		}
	}
	return b.String()
}
