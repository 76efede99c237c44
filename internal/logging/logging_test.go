package logging

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

func TestNew_JSON(t *testing.T) {
	var buf zaptest.Buffer
	log, err := NewWithOutput(Config{Level: "info", Format: "json"}, &buf)
	require.NoError(t, err)

	log.Named("sender").Info("delivered", zap.Int("status_code", 200), zap.Duration("duration", 1500*time.Millisecond))
	log.Debug("hidden at info level")
	require.NoError(t, log.Sync())

	lines := buf.Lines()
	require.Len(t, lines, 1)
	var entry map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &entry))

	require.Equal(t, "info", entry["level"])
	require.Equal(t, "sender", entry["logger"])
	require.Equal(t, "delivered", entry["msg"])
	require.Equal(t, float64(200), entry["status_code"])
	require.Equal(t, 1500.0, entry["duration_ms"], "durations are numbers of milliseconds")
	require.NotContains(t, entry, "duration")
	require.Regexp(t, `^logging/logging_test\.go:\d+$`, entry["caller"])
	ts, ok := entry["ts"].(string)
	require.True(t, ok)
	_, err = time.Parse("2006-01-02T15:04:05.000Z0700", ts)
	require.NoError(t, err, "ts %q is not ISO 8601", ts)
	require.NotContains(t, entry, "stacktrace")
	require.Len(t, entry, 7)
}

func TestNew_Console(t *testing.T) {
	var buf zaptest.Buffer
	log, err := NewWithOutput(Config{Level: "debug", Format: "console"}, &buf)
	require.NoError(t, err)
	log.Debug("starting", zap.String("listen", "127.0.0.1:9464"))

	lines := buf.Lines()
	require.Len(t, lines, 1)
	cols := strings.Split(lines[0], "\t")
	require.GreaterOrEqual(t, len(cols), 5, lines[0])
	require.Equal(t, "DEBUG", cols[1])
	require.Contains(t, cols[2], "logging_test.go:")
	require.Equal(t, "starting", cols[3])
	require.JSONEq(t, `{"listen":"127.0.0.1:9464"}`, cols[4])
}

func TestNew_ZeroValueIsInfoJSON(t *testing.T) {
	var buf zaptest.Buffer
	log, err := NewWithOutput(Config{}, &buf)
	require.NoError(t, err)
	log.Debug("no")
	log.Info("yes")
	require.Len(t, buf.Lines(), 1)
	require.True(t, json.Valid([]byte(buf.Lines()[0])))
}

func TestNew_Levels(t *testing.T) {
	for _, tt := range []struct {
		level   string
		enabled zapcore.Level
		below   zapcore.Level
	}{
		{"debug", zapcore.DebugLevel, zapcore.DebugLevel - 1},
		{"info", zapcore.InfoLevel, zapcore.DebugLevel},
		{"WARN", zapcore.WarnLevel, zapcore.InfoLevel},
		{"error", zapcore.ErrorLevel, zapcore.WarnLevel},
	} {
		t.Run(tt.level, func(t *testing.T) {
			log, err := NewWithOutput(Config{Level: tt.level}, &zaptest.Buffer{})
			require.NoError(t, err)
			require.True(t, log.Core().Enabled(tt.enabled))
			require.False(t, log.Core().Enabled(tt.below))
		})
	}
}

func TestNew_Errors(t *testing.T) {
	_, err := NewWithOutput(Config{Level: "verbose"}, &zaptest.Buffer{})
	require.EqualError(t, err, `log.level: "verbose" is not debug, info, warn or error`)

	_, err = NewWithOutput(Config{Level: "info", Format: "xml"}, &zaptest.Buffer{})
	require.EqualError(t, err, `log.format: "xml" is not "json" or "console"`)
}

func TestNew_Development(t *testing.T) {
	var buf zaptest.Buffer
	log, err := NewWithOutput(Config{Level: "debug", Format: "json", Development: true}, &buf)
	require.NoError(t, err)
	log.Warn("careful")
	require.Contains(t, buf.Lines()[0], `"stacktrace":`)
	require.Panics(t, func() { log.DPanic("boom") })

	buf.Reset()
	prod, err := NewWithOutput(Config{Level: "debug"}, &buf)
	require.NoError(t, err)
	prod.Warn("careful")
	require.NotPanics(t, func() { prod.DPanic("boom") })
	require.NotContains(t, buf.Lines()[0], "stacktrace")
	prod.Error("bad")
	require.Contains(t, buf.Lines()[2], `"stacktrace":`)
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"https://hooks.example.com", "https://hooks.example.com"},
		{"https://hooks.example.com/", "https://hooks.example.com/"},
		{"https://hooks.example.com:8443/", "https://hooks.example.com:8443/"},
		{"https://hooks.example.com/services/T0/B1/xyz", "https://hooks.example.com/[redacted]"},
		{"https://hooks.example.com?token=abc", "https://hooks.example.com/[redacted]"},
		{"https://hooks.example.com/?token=abc", "https://hooks.example.com/[redacted]"},
		{"https://hooks.example.com#frag", "https://hooks.example.com/[redacted]"},
		{"https://hooks.example.com?", "https://hooks.example.com/[redacted]"},
		{"https://user:pass@hooks.example.com/", "https://hooks.example.com/[redacted]"},
		{"HTTP://Hooks.Example.com/x", "http://Hooks.Example.com/[redacted]"},
		{"http://[::1]:8080/hook", "http://[::1]:8080/[redacted]"},
		{"mhsealed:v1:abcdef", "[redacted]"},
		{"hooks.example.com/secret-token", "[redacted]"},
		{"/relative/secret", "[redacted]"},
		{"https://{{ .project }}.example.com/x", "[redacted]"},
		{"https://hooks.example.com/%zz", "[redacted]"},
		{"not a url at all: secret", "[redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			require.Equal(t, tt.want, RedactURL(tt.in))
		})
	}
}

func TestFields_Observer(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)

	const (
		secret  = "whsec_c2VjcmV0LXNpZ25pbmcta2V5"
		hookURL = "https://hooks.example.com/services/T0/B1/s3cr3t?token=abc"
	)
	log.Info("sending",
		Secret("signing_secret", secret),
		Secret("unset_secret", ""),
		Fingerprint("key_id", secret),
		Fingerprint("no_key", ""),
		URL("url", hookURL),
		Error(&url.Error{Op: "Post", URL: hookURL, Err: errors.New("connection refused")}),
	)

	entries := logs.All()
	require.Len(t, entries, 1)
	fields := entries[0].ContextMap()
	require.Equal(t, "[redacted]", fields["signing_secret"])
	require.Equal(t, "", fields["unset_secret"])
	require.Regexp(t, `^sha256:[0-9a-f]{6}$`, fields["key_id"])
	require.Equal(t, "", fields["no_key"])
	require.Equal(t, "https://hooks.example.com/[redacted]", fields["url"])
	require.Equal(t, `Post "https://hooks.example.com/[redacted]": connection refused`, fields["error"])

	// Nothing secret appears anywhere in the entry.
	all := fmt.Sprint(fields)
	for _, leak := range []string{secret, "s3cr3t", "token=abc", "services/T0"} {
		require.NotContains(t, all, leak)
	}

	// The fingerprint is stable and distinguishes secrets.
	again := zapcore.NewMapObjectEncoder()
	Fingerprint("k", secret).AddTo(again)
	require.Equal(t, fields["key_id"], again.Fields["k"])
	other := zapcore.NewMapObjectEncoder()
	Fingerprint("k", secret+"x").AddTo(other)
	require.NotEqual(t, fields["key_id"], other.Fields["k"])
}

func TestError(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)

	// A real *url.Error from net/http, wrapped twice and joined.
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	target := srv.URL + "/hook/s3cr3t?token=abc"
	srv.Close() // connection refused from here on
	_, httpErr := http.Post(target, "application/json", strings.NewReader("{}"))
	require.Error(t, httpErr)
	wrapped := fmt.Errorf("attempt 2: %w", errors.Join(errors.New("other"), fmt.Errorf("post webhook: %w", httpErr)))

	log.Warn("delivery failed", Error(wrapped), Error(nil))
	fields := logs.All()[0].ContextMap()
	msg, ok := fields["error"].(string)
	require.True(t, ok)
	require.Contains(t, msg, "attempt 2: other\npost webhook: Post \""+strings.TrimSuffix(RedactURL(srv.URL+"/x"), "/[redacted]")+"/[redacted]\"")
	require.NotContains(t, msg, "s3cr3t")
	require.NotContains(t, msg, "token")
	require.Equal(t, "plain", RedactError(errors.New("plain")))
}
