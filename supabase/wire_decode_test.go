package supabase

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sameRowsAsEncodingJSON holds a one-pass decoder to json.Unmarshal: the
// same rows, and an error exactly when encoding/json has one.
func sameRowsAsEncodingJSON[T any](t *testing.T, body []byte, decode func([]byte) ([]T, error)) {
	t.Helper()
	var want []T
	wantErr := json.Unmarshal(body, &want)
	got, gotErr := decode(body)
	require.Equal(t, wantErr == nil, gotErr == nil, "%q: encoding/json %v, ours %v", body, wantErr, gotErr)
	if wantErr == nil {
		require.Equal(t, want, got, "%q", body)
	}
}

var claimedVectors = []string{
	`[{"id": "a1", "event": "failed", "run_id": "r1", "status": "delivering", "config_id": "c1", "next_attempt_at": "2026-01-02T03:04:05.123456+00:00"}]`,
	`[]`, `null`, ` [ ] `, `[null]`, `[{}]`, `[{"next_attempt_at":null}]`, `[{"id":"a","id":"b"}]`, `[{"id":"a","id":null}]`,
	`[{"ID":"a","Config_ID":"c","RUN_ID":"r"}]`, `[{"ſtatus":"x","\u0069d":"y"}]`, `[{"id":"\u00e9\ud800\n\"","run_id":"\xff"}]`,
	`[{"id":1}]`, `[{"next_attempt_at":5}]`, `[{"other":{"deep":[1,{"x":null}]},"id":"a"}]`, `[1]`, `["a"]`, `{}`, `"x"`, `7`,
	`[{"id":"a"}]x`, `[{"id":"a"},]`, `[{"id":"a"}`, `[{"id" "a"}]`, `[{"id":tru}]`, ``, ` `, `[{"next_attempt_at":"t","next_attempt_at":null}]`,
	`[{"id":"a"},null,{"id":"b"}]`, `[{"id":"a\u0000b"}]`, `[{"id":"a"}] `, "[{\"id\":\"a\x01\"}]",
}

var alertVectors = []string{
	`[{"id":"a1","config_id":"c1","project_id":null,"workflow_slug":"wf","run_id":"r1","event":"failed","webhook_id":"msg_x",` +
		`"status":"delivering","attempts":2,"next_attempt_at":"2026-01-02T03:04:05+00:00","payload":"{\"a\":1}","target_url":"https://h",` +
		`"occurred_at":"2026-01-02T03:04:05+00:00","last_status_code":503,"last_error":"boom","outcome_reason":"http_503",` +
		`"created_at":"2026-01-02T03:04:05+00:00","updated_at":"2026-01-02T03:04:06+00:00","completed_at":null}]`,
	`[{"attempts":-0}]`, `[{"attempts":1.0}]`, `[{"attempts":1e2}]`, `[{"attempts":9223372036854775807}]`,
	`[{"attempts":9223372036854775808}]`, `[{"attempts":"1"}]`, `[{"attempts":null,"last_status_code":204}]`, `[{"attempts":-}]`,
	`[{"attempts":01}]`, `[{"Last_Status_Code":1,"PAYLOAD":"p"}]`, `[{"payload":{"a":1}}]`, `[{"payload":"a","payload":null}]`,
	`[{"completed_at":true}]`, `[{"attempts":1,"attempts":null}]`,
	`[{"attempts":4,"attempt_base":3,"redelivered_at":"2026-01-03T00:00:00.5+00:00"}]`, `[{"attempt_base":null,"redelivered_at":null}]`,
	`[{"attempt_base":"3"}]`, `[{"redelivered_at":3}]`, `[{"Attempt_Base":2,"REDELIVERED_AT":"t"}]`,
}

func TestDecodeClaimedMatchesEncodingJSON(t *testing.T) {
	for _, v := range append(claimedVectors, alertVectors...) {
		sameRowsAsEncodingJSON(t, []byte(v), decodeClaimed)
	}
}

func TestDecodeAlertRowsMatchesEncodingJSON(t *testing.T) {
	for _, v := range append(alertVectors, claimedVectors...) {
		sameRowsAsEncodingJSON(t, []byte(v), decodeAlertRows)
	}
	deep := `[{"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}]`
	sameRowsAsEncodingJSON(t, []byte(deep), decodeAlertRows)
}

func FuzzDecodeClaimedMatchesEncodingJSON(f *testing.F) {
	for _, v := range claimedVectors {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sameRowsAsEncodingJSON(t, body, decodeClaimed)
	})
}

func FuzzDecodeAlertRowsMatchesEncodingJSON(f *testing.F) {
	for _, v := range alertVectors {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sameRowsAsEncodingJSON(t, body, decodeAlertRows)
	})
}
