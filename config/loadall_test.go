package config

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// One bad value does not hide the others: a duration that does not decode,
// an unknown key, an unknown variable and values Validate refuses are all
// reported by one call, each once.
func TestLoadAndValidate_ReportsEveryProblem(t *testing.T) {
	path := writeFile(t, "c.yaml", "sender:\n  request_timeout: 5x\n  workers: -3\n  wrokers: 2\n"+
		"  lease: 1s\nrealtime:\n  heartbeat_interval: soon\nlog:\n  level: verbose\n")
	cfg, err := loadAndValidate(path, []string{"MESHHOOK_ALERTS_SENDER_RETRY_MAX=forever", "MESHHOOK_ALERTS_SENDR_X=1",
		"MESHHOOK_ALERTS_SENDER_MAX_AGE=-1h"}, nil)
	require.Error(t, err)
	require.Nil(t, cfg)
	msg := err.Error()
	for _, want := range []string{
		`sender.request_timeout: invalid duration "5x"`,
		`realtime.heartbeat_interval: invalid duration "soon"`,
		`sender.retry_max: invalid duration "forever"`,
		`c.yaml:4: unknown key "sender.wrokers"`,
		"MESHHOOK_ALERTS_SENDR_X",
		"supabase.url: required",
		"sender.workers: must be between 1 and 1024, got -3",
		"sender.max_age: must be a positive duration, got -1h0m0s",
		`log.level: must be debug, info, warn or error, got "verbose"`,
	} {
		assert.Contains(t, msg, want)
	}
	// A key that did not decode is validated at its default meanwhile, and
	// nothing is said about it twice or wrongly: sender.lease is checked
	// against sender.request_timeout, which is unknown here.
	assert.NotContains(t, msg, "sender.lease")
	assert.NotContains(t, msg, "sender.retry_max: must")
	var fe *FieldError
	assert.True(t, errors.As(err, &fe), "problems are FieldErrors: %v", err)

	// Load alone still refuses the configuration, naming all the values it
	// could not read.
	_, err = loadNoSearch(t, path, "MESHHOOK_ALERTS_SENDER_RETRY_MAX=forever")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "sender.request_timeout")
	assert.Contains(t, err.Error(), "sender.retry_max")
	assert.Contains(t, err.Error(), `unknown key "sender.wrokers"`)
}

func TestLoadAndValidate_ValidAndFatal(t *testing.T) {
	cfg, err := loadAndValidate("", []string{"SUPABASE_URL=https://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY=k",
		"MESHHOOK_ALERTS_SENDER_WORKERS=8"}, nil)
	require.NoError(t, err)
	assert.Equal(t, 8, cfg.Sender.Workers)

	// A file that does not parse stops loading: nothing else can be said.
	_, err = loadAndValidate(writeFile(t, "c.yaml", "sender: [x\n"), nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "parse config file")
	assert.NotContains(t, err.Error(), "supabase.url")
}

func TestMentions(t *testing.T) {
	assert.True(t, mentions("sender.lease: must be at least twice sender.request_timeout (10s)", "sender.request_timeout"))
	assert.True(t, mentions("sender.lease: x", "sender.lease"))
	assert.False(t, mentions("sender.lease_x: y", "sender.lease"))
	assert.False(t, mentions("xsender.lease: y", "sender.lease"))
	assert.True(t, mentions("sender.allowed_networks[1]: bad", "sender.allowed_networks"))
}
