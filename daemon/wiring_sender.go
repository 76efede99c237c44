package daemon

import (
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/config"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/sender"
)

// SenderOptions maps the sender section to sender.Options.
func SenderOptions(c config.Sender) sender.Options {
	return sender.Options{
		Workers: c.Workers, PerHostConcurrency: c.PerHostConcurrency, QueueSize: c.QueueSize,
		RequestTimeout: c.RequestTimeout, ConnectTimeout: c.ConnectTimeout, TLSHandshakeTimeout: c.TLSHandshakeTimeout,
		PollInterval: c.PollInterval, Lease: c.Lease, ResponseExcerptBytes: c.ResponseExcerptBytes,
		AllowInsecureHTTP: c.AllowInsecureHTTP, AllowedNetworks: c.AllowedNetworks, UserAgent: c.UserAgent,
		Schedule: sender.Schedule{
			Initial: c.RetryInitial, Max: c.RetryMax, Multiplier: 3, Jitter: 0.2,
			MaxAge: c.MaxAge, MaxAttempts: c.MaxAttempts,
		},
		Breaker:     sender.BreakerOptions{Failures: c.CircuitFailures, Cooldown: c.CircuitCooldown},
		WriteBatch:  c.WriteBatchSize,
		WriteLinger: linger(c.WriteFlushInterval),
	}
}

// linger maps write_flush_interval to sender.Options.WriteLinger, where 0
// means the default and a negative value no wait.
func linger(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// newOpener builds the opener of sealed rule fields over keys.
func newOpener(s config.Secrets, keys *seal.Keyring, log *zap.Logger) *rulerow.Opener {
	switch {
	case !keys.CanSeal() && !s.AllowPlaintext:
		log.Warn("secrets.encryption_key is not set: every alert rule will be refused; set a key and seal the rules' " +
			"secret fields with `meshhook-alerts seal`, or set secrets.allow_plaintext")
	case s.AllowPlaintext:
		log.Warn("secrets.allow_plaintext is on: rules with secrets stored in clear are accepted")
	default:
		log.Info("sealed secrets enabled", zap.String("key_id", keys.CurrentKeyID()), zap.Int("previous_keys", len(s.PreviousKeys)))
	}
	return rulerow.NewOpener(keys, s.AllowPlaintext, log)
}
