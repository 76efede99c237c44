// Package logging builds the daemon's zap logger and provides fields that
// keep secrets and webhook URLs out of logs.
//
// There is no global logger: main builds one with New and passes it down;
// components call Named and With on it.
package logging

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Formats of Config.Format.
const (
	FormatJSON    = "json"
	FormatConsole = "console"
)

// Redacted is what a secret, or the secret part of a URL, is shown as.
const Redacted = "[redacted]"

// Config configures a logger (config.Log holds the daemon's).
type Config struct {
	Level       string // debug, info (or ""), warn or error
	Format      string // FormatJSON (or "") or FormatConsole
	Development bool
}

// New returns a logger writing to standard error, configured by cfg (see
// NewWithOutput).
func New(cfg Config) (*zap.Logger, error) {
	return NewWithOutput(cfg, zapcore.Lock(os.Stderr))
}

// NewWithOutput returns a logger writing to out.
//
// Format "json" (or "") writes one JSON object per line with the keys "ts"
// (ISO 8601), "level" (lower case), "logger", "msg" and "caller"; format
// "console" writes tab-separated human-readable lines. Level is debug, info
// (or ""), warn or error. Development enables zap's development mode: DPanic
// panics and warnings carry stack traces; otherwise stack traces start at
// error.
//
// Entries are never sampled: every delivery outcome matters. Repeated
// warnings and errors that concern no particular alert are collapsed
// instead (see collapseCore): the first is written, the same line again
// within CollapseWindow is counted, and one line with "repeated": n stands
// for those. In JSON, durations are numbers of milliseconds under their key
// with "_ms" appended ("latency_ms": 1.297542); the console format writes
// them as strings ("1.297542ms"). Errors inside zap itself go to standard
// error.
func NewWithOutput(cfg Config, out zapcore.WriteSyncer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %q is not debug, info, warn or error", cfg.Level)
	}
	enc := encoderConfig()
	var encoder zapcore.Encoder
	switch cfg.Format {
	case FormatJSON, "":
		enc.EncodeDuration = zapcore.MillisDurationEncoder // inside objects and arrays
		encoder = msDurations{zapcore.NewJSONEncoder(enc)}
	case FormatConsole:
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	default:
		return nil, fmt.Errorf("log.format: %q is not %q or %q", cfg.Format, FormatJSON, FormatConsole)
	}

	opts := []zap.Option{zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr))}
	if cfg.Development {
		opts = append(opts, zap.Development(), zap.AddStacktrace(zapcore.WarnLevel))
	} else {
		opts = append(opts, zap.AddStacktrace(zapcore.ErrorLevel))
	}
	return zap.New(newCollapseCore(zapcore.NewCore(encoder, out, level), CollapseWindow), opts...), nil
}

func encoderConfig() zapcore.EncoderConfig {
	return zapcore.EncoderConfig{
		TimeKey:        "ts",
		LevelKey:       "level",
		NameKey:        "logger",
		CallerKey:      "caller",
		FunctionKey:    zapcore.OmitKey,
		MessageKey:     "msg",
		StacktraceKey:  "stacktrace",
		LineEnding:     zapcore.DefaultLineEnding,
		EncodeLevel:    zapcore.LowercaseLevelEncoder,
		EncodeTime:     zapcore.ISO8601TimeEncoder,
		EncodeDuration: zapcore.StringDurationEncoder,
		EncodeCaller:   zapcore.ShortCallerEncoder,
		EncodeName:     zapcore.FullNameEncoder,
	}
}
