package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/supabase"
)

// Error is an error answered to the client:
// {"error": {"code": Code, "message": Message, "fields": Fields}}.
type Error struct {
	Status  int               // HTTP status
	Code    string            // stable snake_case code, e.g. "validation_failed"
	Message string            // for people
	Fields  map[string]string // field → why it is wrong; nil when none
}

// Error implements error.
func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return e.Message + " (" + strings.Join(parts, "; ") + ")"
}

// fieldErrors collects validation problems by field.
type fieldErrors map[string]string

// add records why field is wrong; a second problem of the same field is
// appended to the first.
func (f fieldErrors) add(field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if prev, ok := f[field]; ok {
		msg = prev + "; " + msg
	}
	f[field] = msg
}

// err returns a 422 naming every field, or nil when there is none.
func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
		Message: "the request has invalid fields", Fields: f}
}

// badRequest is a 400 naming one field (a query or path parameter).
func badRequest(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_parameter",
		Message: "invalid " + field, Fields: map[string]string{field: fmt.Sprintf(format, args...)}}
}

func notFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: what + " not found"}
}

func errTooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Message: fmt.Sprintf("the request body exceeds %d bytes", limit)}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// writeError answers err: an *Error as is, store errors mapped to their
// meaning, anything else as a logged 500 that reveals nothing.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	switch {
	case errors.As(err, &e):
	case supabase.IsNotFound(err):
		e = notFound("the requested row")
	case errors.Is(err, supabase.ErrStale):
		e = &Error{Status: http.StatusConflict, Code: "conflict", Message: "the rule changed meanwhile; reload it and try again"}
	case supabase.IsAuth(err):
		var se *supabase.Error
		if errors.As(err, &se) && se.Status == http.StatusUnauthorized {
			e = &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "the database refused the access token: " + se.Message}
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		} else {
			e = &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "row-level security refused the change"}
		}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return // the client went away
	case supabase.IsRetryable(err):
		a.log.Warn("API request failed: the database is unavailable", zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.Error(err))
		e = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
			Message: "the database is unavailable; try again later"}
	default:
		a.log.Error("API request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		e = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; see the daemon's log"}
	}
	if e.Status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="meshhook-alerts"`)
	}
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		a.logRejected(r, e)
	}
	writeJSON(w, e.Status, errorBody{Error: errorDetail{Code: e.Code, Message: e.Message, Fields: e.Fields}})
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// decodeBody decodes a JSON request body into dst, strictly: unknown
// fields, trailing data and wrong types are 400s naming the field, a body
// over the cap is a 413 and a non-JSON content type a 415. An empty body
// is allowed only when optional is set (dst keeps its zero value).
func decodeBody(r *http.Request, dst any, optional bool, limit int64) error {
	raw, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return errTooLarge(limit)
	case err != nil:
		return &Error{Status: http.StatusBadRequest, Code: "invalid_body", Message: "reading the request body failed"}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		if optional {
			return nil
		}
		return &Error{Status: http.StatusBadRequest, Code: "invalid_body", Message: "a JSON request body is required"}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
				Message: "send the body as application/json"}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body holds more than one JSON value"}
	}
	return nil
}

// jsonError turns a decoding error into a 400 naming the field.
func jsonError(err error) *Error {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body must be a JSON object"}
		}
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "a field has the wrong type",
			Fields: map[string]string{field: "must be " + jsonKind(typeErr.Type.Kind().String()) + ", got " + typeErr.Value}}
	case errors.As(err, &syntaxErr):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json",
			Message: fmt.Sprintf("the body is not valid JSON (at byte %d)", syntaxErr.Offset)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for DisallowUnknownFields.
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if u, err := strconv.Unquote(name); err == nil {
			name = u
		}
		if name == "" {
			return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: `the body has a field with an empty name ("")`}
		}
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body has an unknown field",
			Fields: map[string]string{name: "unknown field"}}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body is truncated JSON"}
	}
	return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: "the body is not valid JSON"}
}

// jsonKind names a Go kind in JSON terms.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "of another type"
}
