package supabase

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTimestamp(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	for _, s := range []string{
		"2026-01-02T03:04:05.123456+00:00",
		"2026-01-02T03:04:05.123456Z",
		"2026-01-02T08:34:05.123456+05:30",
		"2026-01-02 03:04:05.123456+00",
		"2026-01-01 22:04:05.123456-05",
		"2026-01-02 03:04:05.123456",
		"2026-01-02T03:04:05.123456",
	} {
		got, err := ParseTimestamp(s)
		require.NoError(t, err, s)
		assert.True(t, want.Equal(got), "%s: got %s", s, got)
	}
	_, err := ParseTimestamp("yesterday")
	assert.ErrorContains(t, err, "yesterday")
}

func TestParsePGArray(t *testing.T) {
	for in, want := range map[string][]string{
		`{}`:                         {},
		`{failed,succeeded}`:         {"failed", "succeeded"},
		`{"a,b","c\"d",NULL,"NULL"}`: {"a,b", `c"d`, "", "NULL"},
		`{ x , y }`:                  {"x", "y"},
	} {
		got, err := parsePGArray(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{`failed`, `{"a`, `{{a}}`} {
		_, err := parsePGArray(bad)
		assert.Error(t, err, bad)
	}
}

func TestDecodeAlertConfig(t *testing.T) {
	// As PostgREST returns it.
	c, err := decodeConfig([]byte(`{"id":"c1","project_id":null,"workflow_slug":"wf","name":"n","enabled":true,
		"events":["failed","delayed"],"delay_threshold_seconds":300,"stall_threshold_seconds":null,
		"webhook_url":"https://h/{{run.id}}","signing_secrets":["whsec_a","whsec_b"],"meshhook_signature":true,
		"custom_headers":{"X-A":"1"},"payload_template":null,"throttle_max":5,"throttle_window_seconds":60,
		"disabled_reason":null,"created_at":"2026-01-02T03:04:05.123456+00:00","updated_at":"2026-01-02T03:04:06+00:00",
		"some_future_column":[1,2]}`))
	require.NoError(t, err)
	assert.Equal(t, AlertConfig{
		ID: "c1", WorkflowSlug: "wf", Name: "n", Enabled: true, Events: []string{"failed", "delayed"},
		DelayThresholdSeconds: 300, WebhookURL: "https://h/{{run.id}}", SigningSecrets: []string{"whsec_a", "whsec_b"},
		MeshHookSignature: true, CustomHeaders: map[string]string{"X-A": "1"}, ThrottleMax: 5, ThrottleWindowSeconds: 60,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC), UpdatedAt: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC),
	}, normalizeTimes(c))

	// As a Realtime record might carry it, with Postgres text forms.
	c, err = DecodeAlertConfig(map[string]any{
		"id": "c2", "project_id": "p", "name": "n", "enabled": "f", "events": "{failed,stalled}",
		"stall_threshold_seconds": "600", "webhook_url": "u", "signing_secrets": "{}",
		"custom_headers": `{"X-B":"2"}`, "created_at": "2026-01-02 03:04:05.123456+00",
	})
	require.NoError(t, err)
	assert.False(t, c.Enabled)
	assert.Equal(t, []string{"failed", "stalled"}, c.Events)
	assert.Equal(t, 600, c.StallThresholdSeconds)
	assert.Equal(t, []string{}, c.SigningSecrets)
	assert.Equal(t, map[string]string{"X-B": "2"}, c.CustomHeaders)

	_, err = DecodeAlertConfig(map[string]any{"id": "c3", "custom_headers": map[string]any{"X-N": 1}, "delay_threshold_seconds": "soon"})
	require.Error(t, err)
	assert.ErrorContains(t, err, "custom_headers")
	assert.ErrorContains(t, err, `header "X-N"`)
	assert.ErrorContains(t, err, "delay_threshold_seconds")

	_, err = DecodeAlertConfig(map[string]any{"name": "no id"})
	assert.ErrorContains(t, err, "id: missing")
}

func normalizeTimes(c AlertConfig) AlertConfig {
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	return c
}
