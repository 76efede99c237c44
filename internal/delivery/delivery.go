// Package delivery defines the record of one delivery step: the attempt
// made and the alert's new state. The sender makes it and the store writes
// it; neither may import the other, so the record lives here, once.
package delivery

import "time"

// Status is an alert's state (alert_logs.status).
type Status string

// The alert statuses allowed by the schema.
const (
	StatusPending    Status = "pending"
	StatusDelivering Status = "delivering"
	StatusSucceeded  Status = "succeeded"
	StatusFailed     Status = "failed"
	StatusSuppressed Status = "suppressed"
)

// Valid reports whether s is one of the schema's statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusDelivering, StatusSucceeded, StatusFailed, StatusSuppressed:
		return true
	}
	return false
}

// Attempt is the record of one delivery attempt (a row of alert_attempts).
type Attempt struct {
	ID              int64 // set by the database; ignored when recording
	AlertID         string
	Attempt         int // 1 for the first
	StartedAt       time.Time
	Latency         time.Duration // stored in whole milliseconds
	StatusCode      int           // 0 when there was no response (NULL)
	Error           string        // "" = NULL
	ResponseExcerpt string        // "" = NULL; the sender caps its size
	Outcome         string        // the classification's reason, e.g. "2xx", "http_500", "timeout"
}

// Update is an alert's new delivery state.
type Update struct {
	Status        Status
	Attempts      int
	NextAttemptAt time.Time // when Status is pending; zero writes NULL
	OutcomeReason string    // "" keeps the stored reason
	CompletedAt   time.Time // zero writes NULL
	// SetLast replaces last_status_code and last_error with LastStatusCode
	// and LastError (0 and "" write NULL); otherwise they are kept.
	SetLast        bool
	LastStatusCode int
	LastError      string
}

// Report is what one delivery step leaves behind: the attempt (nil when
// nothing was sent, e.g. a circuit-open reschedule) and the alert's new
// state, applied only while the reporter still holds Lease (the alert's
// next_attempt_at while delivering).
type Report struct {
	AlertID string
	Lease   time.Time
	Attempt *Attempt
	Update  Update
}
