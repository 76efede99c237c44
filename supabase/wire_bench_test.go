package supabase

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// The benchmarks below measure the JSON of the delivery path on batches of
// 256 rows (the default page and claim batch size): the answers PostgREST
// sends (claimed alerts, leased alerts) and the bodies the store posts
// (claims, outcome reports). Run them with
//
//	go test -run '^$' -bench 'Wire' -count 5 ./supabase/

const benchRowCount = 256

// benchWebhookPayload is a typical webhook body, stored in alert_logs as
// text and so sent back as a JSON string full of escaped quotes.
const benchWebhookPayload = `{"type":"workflow_run.failed","event":"failed","occurred_at":"2026-03-01T12:00:00.123Z",` +
	`"run":{"id":"7f1c1c7e-3f0c-4a55-9a0e-2f4f9b1d2c11","status":"failed","attempt":3,"duration_ms":9007199254740993,` +
	`"error":"step 4 (http) returned 502 Bad Gateway","started_at":"2026-03-01T11:59:58.001Z"},` +
	`"workflow":{"id":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","slug":"billing-sync","version":3},` +
	`"project":{"id":"0b6f8a51-2c1d-4a7e-9f3b-5d6c7e8f9a0b","name":"Acme <prod> & co"}}`

// benchLeasedRows is alert_lease_due's answer for n alerts, as PostgREST
// writes it.
func benchLeasedRows(n int) []byte {
	type row struct {
		ID             string  `json:"id"`
		ConfigID       string  `json:"config_id"`
		ProjectID      *string `json:"project_id"`
		WorkflowSlug   string  `json:"workflow_slug"`
		RunID          string  `json:"run_id"`
		Event          string  `json:"event"`
		WebhookID      string  `json:"webhook_id"`
		Status         string  `json:"status"`
		Attempts       int     `json:"attempts"`
		AttemptBase    int     `json:"attempt_base"`
		RedeliveredAt  *string `json:"redelivered_at"`
		NextAttemptAt  string  `json:"next_attempt_at"`
		Payload        string  `json:"payload"`
		TargetURL      string  `json:"target_url"`
		OccurredAt     string  `json:"occurred_at"`
		LastStatusCode *int    `json:"last_status_code"`
		LastError      *string `json:"last_error"`
		OutcomeReason  *string `json:"outcome_reason"`
		CreatedAt      string  `json:"created_at"`
		UpdatedAt      string  `json:"updated_at"`
		CompletedAt    *string `json:"completed_at"`
	}
	code, lastErr := 503, "HTTP 503 Service Unavailable"
	rows := make([]row, n)
	for i := range rows {
		rows[i] = row{
			ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), ConfigID: "3c9a1e2b-5d4f-4a6b-8c7d-9e0f1a2b3c4d",
			WorkflowSlug: "billing-sync", RunID: fmt.Sprintf("7f1c1c7e-3f0c-4a55-9a0e-%012d", i), Event: "failed",
			WebhookID: fmt.Sprintf("msg_2f4f9b1d2c11%012d", i), Status: "delivering", Attempts: 2, AttemptBase: 0,
			NextAttemptAt: "2026-03-01T12:00:30.123456+00:00", Payload: benchWebhookPayload,
			TargetURL: "https://hooks.example.com/meshhook/billing", OccurredAt: "2026-03-01T12:00:00.123+00:00",
			LastStatusCode: &code, LastError: &lastErr, CreatedAt: "2026-03-01T12:00:00.234567+00:00",
			UpdatedAt: "2026-03-01T12:00:10.345678+00:00",
		}
	}
	b, err := json.Marshal(rows)
	if err != nil {
		panic(err)
	}
	return b
}

// benchClaimedRows is alert_claim's answer for n alerts.
func benchClaimedRows(n int) []byte {
	rows := make([]claimedWire, n)
	next := "2026-03-01T12:00:30.123456+00:00"
	for i := range rows {
		rows[i] = claimedWire{
			ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), ConfigID: "3c9a1e2b-5d4f-4a6b-8c7d-9e0f1a2b3c4d",
			RunID: fmt.Sprintf("7f1c1c7e-3f0c-4a55-9a0e-%012d", i), Event: "failed", Status: "delivering", NextAttemptAt: &next,
		}
	}
	b, err := json.Marshal(rows)
	if err != nil {
		panic(err)
	}
	return b
}

func BenchmarkWireDecodeLeased256(b *testing.B) {
	body := benchLeasedRows(benchRowCount)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		rows, err := decodeAlertRows(body)
		if err != nil || len(rows) != benchRowCount {
			b.Fatal(len(rows), err)
		}
	}
}

// BenchmarkWireDecodeLeasedAlerts256 is decodeAlerts: the rows decoded and
// turned into AlertLogs (six timestamps parsed per row).
func BenchmarkWireDecodeLeasedAlerts256(b *testing.B) {
	body := benchLeasedRows(benchRowCount)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		rows, err := decodeAlerts(body)
		if err != nil || len(rows) != benchRowCount {
			b.Fatal(len(rows), err)
		}
	}
}

func BenchmarkWireDecodeClaimed256(b *testing.B) {
	body := benchClaimedRows(benchRowCount)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		rows, err := decodeClaimed(body)
		if err != nil || len(rows) != benchRowCount {
			b.Fatal(len(rows), err)
		}
	}
}

func BenchmarkWireEncodeClaim256(b *testing.B) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123000000, time.UTC)
	rows := make([]alertInsert, benchRowCount)
	for i := range rows {
		row, err := NewAlert{
			ConfigID: "3c9a1e2b-5d4f-4a6b-8c7d-9e0f1a2b3c4d", WorkflowSlug: "billing-sync",
			RunID: fmt.Sprintf("7f1c1c7e-3f0c-4a55-9a0e-%012d", i), Event: "failed",
			WebhookID: fmt.Sprintf("msg_2f4f9b1d2c11%012d", i), Payload: []byte(benchWebhookPayload),
			TargetURL: "https://hooks.example.com/meshhook/billing", OccurredAt: at,
			Status: StatusDelivering, NextAttemptAt: at.Add(30 * time.Second),
		}.wire(at)
		if err != nil {
			b.Fatal(err)
		}
		rows[i] = row
	}
	b.SetBytes(int64(len(claimArgs(rows))))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		claimArgs(rows)
	}
}

func BenchmarkWireEncodeReport256(b *testing.B) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	code := 204
	attempts := make([]attemptInsert, benchRowCount)
	updates := make([]reportUpdate, benchRowCount)
	for i := range attempts {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		done := bodyTime(at.Add(40 * time.Millisecond))
		attempts[i] = attemptInsert{AlertID: id, Attempt: 1, StartedAt: bodyTime(at), LatencyMS: 38, StatusCode: &code, Outcome: "2xx"}
		updates[i] = reportUpdate{ID: id, Lease: bodyTime(at.Add(30 * time.Second)), Status: "succeeded", Attempts: 1,
			CompletedAt: &done, SetLast: true, LastStatusCode: &code}
	}
	b.SetBytes(int64(len(reportArgs(attempts, updates))))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		reportArgs(attempts, updates)
	}
}

// reportCPU starts counting the process's CPU time; the function it returns
// reports it per operation as cpu-ns/op. On a shared machine CPU time moves
// less than ns/op (wall time) when other processes take the cores.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() { b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op") }
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
