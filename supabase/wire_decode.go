package supabase

import (
	"fmt"
	"strconv"

	"github.com/meshhook/meshhook-alerts/internal/jsonscan"
)

// The delivery path reads thousands of rows a second from PostgREST
// (claimed alerts, leased alerts). They are decoded here in one pass and
// without reflection, exactly as json.Unmarshal decodes them into the wire
// structs: the tests hold every decoder to encoding/json.

// decodeRows decodes a JSON array of objects as json.Unmarshal into a []T
// would. member is called with each member of each object and must consume
// its value; memberIndex tells it which of its fields a key names.
func decodeRows[T any](body []byte, what string, member func(p *jsonscan.Parser, row *T, key []byte) (typeErr, err error)) ([]T, error) {
	p := jsonscan.NewParser(body)
	p.SkipSpace()
	var typeErr error // the first wrong type; decoding goes on, as encoding/json's does
	note := func(e error) {
		if typeErr == nil {
			typeErr = e
		}
	}
	var rows []T
	done, terr, err := p.NullOr('[', what, "an array")
	if terr != nil {
		note(terr)
	}
	if err != nil {
		return nil, err
	}
	if !done {
		rows = make([]T, 0, 16)
		err := p.Array(func() error {
			var zero T
			rows = append(rows, zero)
			row := &rows[len(rows)-1]
			done, terr, err := p.NullOr('{', what, "an array of objects")
			if terr != nil {
				note(terr)
			}
			if done {
				return err
			}
			return p.Object(func(key []byte) error {
				terr, err := member(&p, row, key)
				if terr != nil {
					note(terr)
				}
				return err
			})
		})
		if err != nil {
			return nil, err
		}
	}
	if err := p.End(); err != nil {
		return nil, err
	}
	if typeErr != nil {
		return nil, typeErr
	}
	return rows, nil
}

// memberIndex returns the index of the field in names that key names, as
// encoding/json matches keys to fields (exactly, else case-insensitively),
// or -1.
func memberIndex(key []byte, names []string) int {
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	for i, n := range names {
		if jsonscan.FieldIs(key, n) {
			return i
		}
	}
	return -1
}

// nullableInt64 decodes null (nil) or an integer into *dst.
func nullableInt64(p *jsonscan.Parser, field string, dst **int64) (typeErr, err error) {
	switch c := p.Peek(); {
	case c == 'n':
		if !p.Literal("null") {
			return nil, p.SyntaxError("in a literal")
		}
		*dst = nil
		return nil, nil
	case c == '-' || (c >= '0' && c <= '9'):
		lit, err := p.Number()
		if err != nil {
			return nil, err
		}
		n, perr := strconv.ParseInt(string(lit), 10, 64)
		if perr != nil {
			return fmt.Errorf("%s: %s is not a 64-bit integer", field, lit), nil
		}
		*dst = &n
		return nil, nil
	}
	if err := p.SkipValue(); err != nil {
		return nil, err
	}
	return jsonscan.TypeError(field, "an integer"), nil
}

var claimedFields = []string{"id", "config_id", "run_id", "event", "status", "next_attempt_at"}

// decodeClaimed decodes alert_claim's answer as json.Unmarshal into a
// []claimedWire would.
func decodeClaimed(body []byte) ([]claimedWire, error) {
	return decodeRows(body, "claimed alerts", func(p *jsonscan.Parser, w *claimedWire, key []byte) (error, error) {
		switch i := memberIndex(key, claimedFields); i {
		case -1:
			return nil, p.SkipValue()
		case 5:
			return p.NullableString(claimedFields[i], &w.NextAttemptAt)
		default:
			return p.StringField(claimedFields[i], [...]*string{&w.ID, &w.ConfigID, &w.RunID, &w.Event, &w.Status}[i])
		}
	})
}

// alertFields are alertWire's keys in field order.
var alertFields = []string{"id", "config_id", "project_id", "workflow_slug", "run_id", "event", "webhook_id", "status",
	"attempts", "attempt_base", "redelivered_at", "next_attempt_at", "payload", "target_url", "occurred_at",
	"last_status_code", "last_error", "outcome_reason", "created_at", "updated_at", "completed_at"}

// decodeAlertRows decodes alert_logs rows as json.Unmarshal into an
// []alertWire would.
func decodeAlertRows(body []byte) ([]alertWire, error) {
	return decodeRows(body, "alerts", func(p *jsonscan.Parser, w *alertWire, key []byte) (error, error) {
		i := memberIndex(key, alertFields)
		switch i {
		case -1:
			return nil, p.SkipValue()
		case 8:
			return nullableInt64(p, alertFields[i], &w.Attempts)
		case 9:
			return nullableInt64(p, alertFields[i], &w.AttemptBase)
		case 15:
			return nullableInt64(p, alertFields[i], &w.LastStatusCode)
		}
		return p.NullableString(alertFields[i], w.stringField(i))
	})
}

// stringField returns the *string field at index i of alertFields.
func (w *alertWire) stringField(i int) **string {
	return [...]**string{&w.ID, &w.ConfigID, &w.ProjectID, &w.WorkflowSlug, &w.RunID, &w.Event, &w.WebhookID,
		&w.Status, nil, nil, &w.RedeliveredAt, &w.NextAttemptAt, &w.Payload, &w.TargetURL, &w.OccurredAt, nil,
		&w.LastError, &w.OutcomeReason, &w.CreatedAt, &w.UpdatedAt, &w.CompletedAt}[i]
}
