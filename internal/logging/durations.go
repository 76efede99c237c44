package logging

import (
	"slices"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// msSuffix is appended to the key of a duration field in JSON logs.
const msSuffix = "_ms"

// millis is d in milliseconds, with the sub-millisecond part kept.
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// msDurations makes a JSON encoder write every duration field as a number
// of milliseconds under its key with "_ms" appended: zap.Duration("latency",
// 1297542*time.Nanosecond) becomes "latency_ms":1.297542, which jq can
// compare ("1.297542ms", a string, it cannot).
type msDurations struct{ zapcore.Encoder }

func (e msDurations) AddDuration(key string, d time.Duration) {
	e.Encoder.AddFloat64(key+msSuffix, millis(d))
}

func (e msDurations) Clone() zapcore.Encoder { return msDurations{e.Encoder.Clone()} }

func (e msDurations) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	if slices.ContainsFunc(fields, isDuration) {
		fields = slices.Clone(fields) // the caller's slice is not ours to change
		for i, f := range fields {
			if isDuration(f) {
				fields[i] = zap.Float64(f.Key+msSuffix, millis(time.Duration(f.Integer)))
			}
		}
	}
	return e.Encoder.EncodeEntry(ent, fields)
}

func isDuration(f zapcore.Field) bool { return f.Type == zapcore.DurationType }
