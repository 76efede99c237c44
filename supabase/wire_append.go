package supabase

import (
	"strconv"

	"github.com/meshhook/meshhook-alerts/internal/jsonenc"
)

// The delivery path sends thousands of rows a second (claims, attempts,
// state updates). Its bodies are written field by field below instead of
// through encoding/json's reflection; the output is byte for byte what
// json.Marshal writes for the same struct, which the tests check.

func appendKey(dst []byte, first bool, key string) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, key...) // keys are plain identifiers: nothing to escape
	return append(dst, '"', ':')
}

func appendNullString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return jsonenc.AppendString(dst, *s)
}

func appendNullInt(dst []byte, v *int) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	return strconv.AppendInt(dst, int64(*v), 10)
}

func (a *alertInsert) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = jsonenc.AppendString(appendKey(dst, true, "config_id"), a.ConfigID)
	dst = appendNullString(appendKey(dst, false, "project_id"), a.ProjectID)
	dst = appendNullString(appendKey(dst, false, "workflow_slug"), a.WorkflowSlug)
	dst = jsonenc.AppendString(appendKey(dst, false, "run_id"), a.RunID)
	dst = jsonenc.AppendString(appendKey(dst, false, "event"), a.Event)
	dst = jsonenc.AppendString(appendKey(dst, false, "webhook_id"), a.WebhookID)
	dst = jsonenc.AppendString(appendKey(dst, false, "status"), a.Status)
	dst = appendNullString(appendKey(dst, false, "next_attempt_at"), a.NextAttemptAt)
	dst = jsonenc.AppendString(appendKey(dst, false, "payload"), a.Payload)
	dst = jsonenc.AppendString(appendKey(dst, false, "target_url"), a.TargetURL)
	dst = jsonenc.AppendString(appendKey(dst, false, "occurred_at"), a.OccurredAt)
	dst = appendNullString(appendKey(dst, false, "outcome_reason"), a.OutcomeReason)
	dst = appendNullString(appendKey(dst, false, "completed_at"), a.CompletedAt)
	return append(dst, '}')
}

func (a *attemptInsert) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = jsonenc.AppendString(appendKey(dst, true, "alert_id"), a.AlertID)
	dst = strconv.AppendInt(appendKey(dst, false, "attempt"), int64(a.Attempt), 10)
	dst = jsonenc.AppendString(appendKey(dst, false, "started_at"), a.StartedAt)
	dst = strconv.AppendInt(appendKey(dst, false, "latency_ms"), a.LatencyMS, 10)
	dst = appendNullInt(appendKey(dst, false, "status_code"), a.StatusCode)
	dst = appendNullString(appendKey(dst, false, "error"), a.Error)
	dst = appendNullString(appendKey(dst, false, "response_excerpt"), a.ResponseExcerpt)
	dst = jsonenc.AppendString(appendKey(dst, false, "outcome"), a.Outcome)
	return append(dst, '}')
}

func (u *reportUpdate) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = jsonenc.AppendString(appendKey(dst, true, "id"), u.ID)
	dst = jsonenc.AppendString(appendKey(dst, false, "lease"), u.Lease)
	dst = jsonenc.AppendString(appendKey(dst, false, "status"), u.Status)
	dst = strconv.AppendInt(appendKey(dst, false, "attempts"), int64(u.Attempts), 10)
	dst = appendNullString(appendKey(dst, false, "next_attempt_at"), u.NextAttemptAt)
	dst = appendNullString(appendKey(dst, false, "outcome_reason"), u.OutcomeReason)
	dst = appendNullString(appendKey(dst, false, "completed_at"), u.CompletedAt)
	dst = strconv.AppendBool(appendKey(dst, false, "set_last"), u.SetLast)
	dst = appendNullInt(appendKey(dst, false, "last_status_code"), u.LastStatusCode)
	dst = appendNullString(appendKey(dst, false, "last_error"), u.LastError)
	return append(dst, '}')
}

// appendArray appends rows as a JSON array, each written by enc.
func appendArray[T any](dst []byte, rows []T, enc func(*T, []byte) []byte) []byte {
	dst = append(dst, '[')
	for i := range rows {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = enc(&rows[i], dst)
	}
	return append(dst, ']')
}

// claimArgs is alert_claim's request body: {"p_alerts": rows}.
func claimArgs(rows []alertInsert) []byte {
	return append(appendArray(append(make([]byte, 0, 1024*len(rows)), `{"p_alerts":`...), rows, (*alertInsert).appendJSON), '}')
}

// reportArgs is alert_report_deliveries' request body:
// {"p_attempts": attempts, "p_updates": updates}.
func reportArgs(attempts []attemptInsert, updates []reportUpdate) []byte {
	args := appendArray(append(make([]byte, 0, 512*len(updates)), `{"p_attempts":`...), attempts, (*attemptInsert).appendJSON)
	return append(appendArray(append(args, `,"p_updates":`...), updates, (*reportUpdate).appendJSON), '}')
}
