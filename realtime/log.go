package realtime

import (
	"net/url"
	"strings"
)

// Log field keys, snake_case, shared by all files of the package. The API
// key and tokens are never logged.
const (
	logKeyChannel    = "channel"
	logKeyTopic      = "topic"
	logKeyJoinRef    = "join_ref"
	logKeyRef        = "ref"
	logKeyEvent      = "event"
	logKeyReason     = "reason"
	logKeyMessage    = "message"
	logKeyURL        = "url"
	logKeyVsn        = "vsn"
	logKeyBackoff    = "backoff"
	logKeyAttempt    = "attempt"
	logKeyStatusCode = "status_code"
	logKeySize       = "size"
	logKeyUptime     = "uptime"
	logKeyChangeType = "change_type"
	logKeyExtension  = "extension"
	logKeyStatus     = "status"
)

// redactedError hides secrets in an error message while keeping the chain
// for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact replaces every occurrence of the secrets (raw and query-escaped)
// in err's message with "[REDACTED]".
func redact(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := msg
	for _, s := range secrets {
		if s == "" {
			continue
		}
		out = strings.ReplaceAll(out, s, "[REDACTED]")
		if esc := url.QueryEscape(s); esc != s {
			out = strings.ReplaceAll(out, esc, "[REDACTED]")
		}
	}
	if out == msg {
		return err
	}
	return &redactedError{msg: out, err: err}
}
