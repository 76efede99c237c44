package supabase

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wireStrings are awkward values for the hand-written encoders: escapes,
// HTML characters, invalid UTF-8, U+2028.
var wireStrings = []string{"", "plain", `q"b\s`, "<a&b>", "tab\tnl\n\x00", "\xff\xfe", "sep\u2028", "héllo 🎉",
	`{"type":"workflow_run.failed","run":{"id":"r1"}}`, "2026-01-02T03:04:05.123456Z"}

// randomWire fills every field of a wire struct: strings from wireStrings
// or random bytes, pointers nil or set, numbers of any sign and size.
func randomWire[T any](rng *rand.Rand) T {
	var v T
	rv := reflect.ValueOf(&v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		if f.Kind() == reflect.Pointer {
			if rng.IntN(3) == 0 {
				continue // nil
			}
			f.Set(reflect.New(f.Type().Elem()))
			f = f.Elem()
		}
		switch f.Kind() {
		case reflect.String:
			if rng.IntN(2) == 0 {
				f.SetString(wireStrings[rng.IntN(len(wireStrings))])
				break
			}
			b := make([]byte, rng.IntN(12))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			f.SetString(string(b))
		case reflect.Int, reflect.Int64:
			f.SetInt(rng.Int64() >> rng.IntN(64))
			if rng.IntN(2) == 0 {
				f.SetInt(-f.Int())
			}
		case reflect.Bool:
			f.SetBool(rng.IntN(2) == 0)
		default:
			panic("randomWire: unhandled field kind " + f.Kind().String())
		}
	}
	return v
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for range 3000 {
		a := randomWire[alertInsert](rng)
		want, err := json.Marshal(a)
		require.NoError(t, err)
		require.Equal(t, string(want), string(a.appendJSON(nil)))

		at := randomWire[attemptInsert](rng)
		want, err = json.Marshal(at)
		require.NoError(t, err)
		require.Equal(t, string(want), string(at.appendJSON(nil)))

		u := randomWire[reportUpdate](rng)
		want, err = json.Marshal(u)
		require.NoError(t, err)
		require.Equal(t, string(want), string(u.appendJSON(nil)))
	}
	rows := []attemptInsert{{AlertID: "a"}, {AlertID: "b", Attempt: 2}}
	want, _ := json.Marshal(rows)
	assert.Equal(t, string(want), string(appendArray(nil, rows, (*attemptInsert).appendJSON)))
	assert.Equal(t, "[]", string(appendArray(nil, []attemptInsert{}, (*attemptInsert).appendJSON)))
}

func TestRPCNamesArgumentsInColumns(t *testing.T) {
	f := newFake(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			writeJSON(w, 503, `{"code":"PGRST001","message":"no connection"}`)
			return
		}
		writeJSON(w, 200, `["a1"]`)
	})
	s := newTestStore(t, f.URL, nil)
	lease := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	applied, err := s.ReportDeliveries(t.Context(), []DeliveryReport{{
		AlertID: "a1", Lease: lease,
		Attempt: &Attempt{Attempt: 1, StartedAt: lease, Latency: 12 * time.Millisecond, StatusCode: 200, Outcome: "2xx"},
		Update:  DeliveryUpdate{Status: StatusSucceeded, Attempts: 1, CompletedAt: lease},
	}})
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{"a1": true}, applied)
	assert.EqualValues(t, 2, f.hits.Load(), "a 503 is retried")

	r, body := f.lastRequest()
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, "/rest/v1/rpc/alert_report_deliveries", r.URL.Path)
	assert.Equal(t, "p_attempts,p_updates", r.URL.Query().Get("columns"))
	argsMatchColumns(t, r, body)
	assert.Equal(t, []string{testKey}, r.Header.Values("apikey"))
	assert.Equal(t, []string{"Bearer " + testKey}, r.Header.Values("Authorization"))
	assert.Equal(t, []string{"public"}, r.Header.Values("Content-Profile"))
	assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	assert.Equal(t, DefaultUserAgent, r.Header.Get("User-Agent"))
	assert.Empty(t, r.Header.Values("Prefer"))
	assert.JSONEq(t, `{"p_attempts":[{"alert_id":"a1","attempt":1,"started_at":"2026-01-02T03:04:05Z","latency_ms":12,
		"status_code":200,"error":null,"response_excerpt":null,"outcome":"2xx"}],
		"p_updates":[{"id":"a1","lease":"2026-01-02T03:04:05Z","status":"succeeded","attempts":1,"next_attempt_at":null,
		"outcome_reason":null,"completed_at":"2026-01-02T03:04:05Z","set_last":false,"last_status_code":null,"last_error":null}]}`,
		string(body))

	_, err = s.LeaseDueAlerts(t.Context(), lease, lease.Add(time.Minute), 7)
	require.Error(t, err, `["a1"] is not a list of alerts`)
	r, body = f.lastRequest()
	assert.Equal(t, "/rest/v1/rpc/alert_lease_due", r.URL.Path)
	assert.Equal(t, "p_now,p_until,p_limit", r.URL.Query().Get("columns"))
	argsMatchColumns(t, r, body)
	assert.JSONEq(t, `{"p_now":"2026-01-02T03:04:05Z","p_until":"2026-01-02T03:05:05Z","p_limit":7}`, string(body))
}

// RPC answers are read whole, with or without a Content-Length, and an
// answer over MaxResponseBytes is refused, not truncated.
func TestRPCReadsAnswersWholeAndWithinLimit(t *testing.T) {
	ids := `["` + strings.Repeat("a", 3000) + `"]`
	f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("columns") == "p_attempts,p_updates" && n%2 == 0 {
			w.(http.Flusher).Flush() // no Content-Length
		}
		_, _ = io.WriteString(w, ids)
	})
	s := newTestStore(t, f.URL, func(o *Options) { o.MaxRetries = -1 })
	report := []DeliveryReport{{AlertID: "a1", Lease: time.Now(), Update: DeliveryUpdate{Status: StatusPending}}}
	for range 2 { // with and without a length
		applied, err := s.ReportDeliveries(t.Context(), report)
		require.NoError(t, err)
		assert.Equal(t, map[string]bool{strings.Repeat("a", 3000): true}, applied)
	}
	exact := newTestStore(t, f.URL, func(o *Options) { o.MaxRetries = -1; o.MaxResponseBytes = int64(len(ids)) })
	for range 2 { // an answer exactly at the limit is whole
		_, err := exact.ReportDeliveries(t.Context(), report)
		require.NoError(t, err)
	}
	small := newTestStore(t, f.URL, func(o *Options) { o.MaxRetries = -1; o.MaxResponseBytes = 1024 })
	for range 2 {
		_, err := small.ReportDeliveries(t.Context(), report)
		require.ErrorIs(t, err, errBodyTooLarge)
	}
}

// argsMatchColumns checks that a function call's body has exactly the
// arguments its ?columns= names: with ?columns=, PostgREST passes NULL for
// a named argument missing from the body instead of refusing the call.
func argsMatchColumns(t *testing.T, r *http.Request, body []byte) {
	t.Helper()
	var args map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &args))
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	assert.ElementsMatch(t, strings.Split(r.URL.Query().Get("columns"), ","), keys)
}

func TestClaimAlertsRequestAndAnswer(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, `[{"id": "a1", "event": "failed", "run_id": "r1", "status": "delivering", "config_id": "c1",`+
			` "next_attempt_at": "2026-01-02T03:05:05+00:00"}]`)
	})
	s := newTestStore(t, f.URL, nil)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	claimed, err := s.ClaimAlerts(t.Context(), []NewAlert{{
		ConfigID: "c1", RunID: "r1", Event: "failed", WebhookID: "msg_1", Payload: []byte(`{"a":"<b>"}`),
		TargetURL: "https://h/x", OccurredAt: at, Status: StatusDelivering, NextAttemptAt: at.Add(time.Minute),
	}})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	assert.True(t, claimed[0].NextAttemptAt.Equal(at.Add(time.Minute)), "%s", claimed[0].NextAttemptAt)
	claimed[0].NextAttemptAt = time.Time{}
	assert.Equal(t, []ClaimedAlert{{ID: "a1", ConfigID: "c1", RunID: "r1", Event: "failed", Status: StatusDelivering}}, claimed)

	r, body := f.lastRequest()
	assert.Equal(t, "/rest/v1/rpc/alert_claim", r.URL.Path)
	assert.Equal(t, "p_alerts", r.URL.Query().Get("columns"))
	argsMatchColumns(t, r, body)
	assert.JSONEq(t, `{"p_alerts":[{"config_id":"c1","project_id":null,"workflow_slug":null,"run_id":"r1","event":"failed",
		"webhook_id":"msg_1","status":"delivering","next_attempt_at":"2026-01-02T03:05:05Z","payload":"{\"a\":\"<b>\"}",
		"target_url":"https://h/x","occurred_at":"2026-01-02T03:04:05Z","outcome_reason":null,"completed_at":null}]}`, string(body))
}
