package supabasetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// apiError is an error answered to the client in PostgREST's shape:
// {"code","details","hint","message"} (details and hint may be null).
type apiError struct {
	Status  int
	Code    string
	Message string
	Details *string
	Hint    *string
	// Header holds extra response headers (WWW-Authenticate, RAISE PGRST headers).
	Header http.Header
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// body renders the JSON error body with PostgREST's key order.
func (e *apiError) body() []byte {
	b, _ := json.Marshal(struct {
		Code    string  `json:"code"`
		Details *string `json:"details"`
		Hint    *string `json:"hint"`
		Message string  `json:"message"`
	}{e.Code, e.Details, e.Hint, e.Message})
	return b
}

func strp(s string) *string { return &s }

// optStr maps "" to null, as PostgREST does for absent PostgreSQL fields.
func optStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func newAPIError(status int, code, message string, details, hint *string) *apiError {
	return &apiError{Status: status, Code: code, Message: message, Details: details, Hint: hint}
}

// errParse is PGRST100: a query parameter failed to parse.
func errParse(message, details string) *apiError {
	return newAPIError(http.StatusBadRequest, "PGRST100", message, strp(details), nil)
}

// errInvalidBody is PGRST102.
func errInvalidBody(message string) *apiError {
	return newAPIError(http.StatusBadRequest, "PGRST102", message, nil, nil)
}

// Range errors (PGRST103, 416).
const (
	rangeNegativeLimit = "Limit should be greater than or equal to zero."
	rangeLowerGTUpper  = "The lower boundary must be lower than or equal to the upper boundary in the Range header."
)

func errRange(details string) *apiError {
	return newAPIError(http.StatusRequestedRangeNotSatisfiable, "PGRST103", "Requested range not satisfiable", strp(details), nil)
}

func errRangeOutOfBounds(offset, total int64) *apiError {
	return errRange(fmt.Sprintf("An offset of %d was requested, but there are only %d rows.", offset, total))
}

func errUnacceptableSchema(schema string, exposed []string) *apiError {
	return newAPIError(http.StatusNotAcceptable, "PGRST106", "Invalid schema: "+schema, nil,
		strp("Only the following schemas are exposed: "+strings.Join(exposed, ", ")))
}

func errMediaType(accepted []string) *apiError {
	return newAPIError(http.StatusNotAcceptable, "PGRST107",
		"None of these media types are available: "+strings.Join(accepted, ", "), nil, nil)
}

func errNotEmbedded(resource string) *apiError {
	return newAPIError(http.StatusBadRequest, "PGRST108", "'"+resource+"' is not an embedded resource in this request", nil,
		strp("Verify that '"+resource+"' is included in the 'select' query parameter."))
}

func errPutLimit() *apiError {
	return newAPIError(http.StatusBadRequest, "PGRST114", "limit/offset querystring parameters are not allowed for PUT", nil, nil)
}

func errPutMatchingPK() *apiError {
	return newAPIError(http.StatusBadRequest, "PGRST115", "Payload values do not match URL in primary key column(s)", nil, nil)
}

func errInvalidFilters() *apiError {
	return newAPIError(http.StatusMethodNotAllowed, "PGRST105", "Filters must include all and only primary key columns with 'eq' operators", nil, nil)
}

func errSingular(rows int64) *apiError {
	return newAPIError(http.StatusNotAcceptable, "PGRST116", "Cannot coerce the result to a single JSON object",
		strp(fmt.Sprintf("The result contains %d rows", rows)), nil)
}

func errUnsupportedMethod(method string) *apiError {
	return newAPIError(http.StatusMethodNotAllowed, "PGRST117", "Unsupported HTTP method: "+method, nil, nil)
}

func errInvalidRPCMethod(method string) *apiError {
	return newAPIError(http.StatusMethodNotAllowed, "PGRST101", "Cannot use the "+method+" method on RPC", nil, nil)
}

func errInvalidPreferences(invalid []string) *apiError {
	return newAPIError(http.StatusBadRequest, "PGRST122", "Invalid preferences given with handling=strict",
		strp("Invalid preferences: "+strings.Join(invalid, ", ")), nil)
}

func errAggregatesNotAllowed() *apiError {
	return newAPIError(http.StatusBadRequest, "PGRST123", "Use of aggregate functions is not allowed", nil, nil)
}

func errMaxAffected(rows int64) *apiError {
	return newAPIError(http.StatusBadRequest, "PGRST124", "Query result exceeds max-affected preference constraint",
		strp(fmt.Sprintf("The query affects %d rows", rows)), nil)
}

func errInvalidPath() *apiError {
	return newAPIError(http.StatusNotFound, "PGRST125", "Invalid path specified in request URL", nil, nil)
}

// errNotImplemented is PGRST127, used for PostgREST features this stand-in
// does not provide (resource embedding, ...), so callers get a clear answer
// instead of a silently different result.
func errNotImplemented(details string) *apiError {
	return newAPIError(http.StatusBadRequest, "PGRST127", "Feature not implemented", strp(details), nil)
}

func errColumnNotFound(table, column string) *apiError {
	return newAPIError(http.StatusBadRequest, "PGRST204",
		"Could not find the '"+column+"' column of '"+table+"' in the schema cache", nil, nil)
}

func errTableNotFound(schema, table string, candidates []string) *apiError {
	var hint *string
	if best, ok := fuzzyBest(table, candidates, 0.75); ok {
		hint = strp("Perhaps you meant the table '" + schema + "." + best + "'")
	}
	return newAPIError(http.StatusNotFound, "PGRST205",
		"Could not find the table '"+schema+"."+table+"' in the schema cache", nil, hint)
}

// JWT errors (PGRST301/303) carry a WWW-Authenticate header like PostgREST's.
func errJWT(code, message string, details *string) *apiError {
	e := newAPIError(http.StatusUnauthorized, code, message, details, nil)
	e.Header = http.Header{"Www-Authenticate": {`Bearer error="invalid_token", error_description=` + strconv.Quote(message)}}
	return e
}

// errDBConnection is PGRST000 (503): the database could not be reached.
func errDBConnection(err error) *apiError {
	return newAPIError(http.StatusServiceUnavailable, "PGRST000", "Database connection error.", strp(err.Error()), nil)
}

// sqlStateStatus maps a PostgreSQL SQLSTATE to PostgREST's HTTP status
// (PostgREST.Error.pgErrorStatus). authed is true when the request's role
// is not the anonymous role.
func sqlStateStatus(code, message string, authed bool) int {
	two := ""
	if len(code) >= 2 {
		two = code[:2]
	}
	switch code {
	case "23503", "23505":
		return http.StatusConflict
	case "25006":
		return http.StatusMethodNotAllowed
	case "21000":
		if strings.HasSuffix(message, "requires a WHERE clause") {
			return http.StatusBadRequest
		}
		return http.StatusInternalServerError
	case "22023":
		if strings.HasPrefix(message, "role") && strings.HasSuffix(message, "does not exist") {
			return http.StatusUnauthorized
		}
		return http.StatusBadRequest
	case "53400":
		return http.StatusInternalServerError
	case "57P01":
		return http.StatusServiceUnavailable
	case "P0001":
		return http.StatusBadRequest
	case "42883":
		if strings.HasPrefix(message, "function xmlagg(") {
			return http.StatusNotAcceptable
		}
		return http.StatusNotFound
	case "42P01":
		return http.StatusNotFound
	case "42P17":
		return http.StatusInternalServerError
	case "42501":
		if authed {
			return http.StatusForbidden
		}
		return http.StatusUnauthorized
	}
	switch two {
	case "08", "53":
		return http.StatusServiceUnavailable
	case "09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "F0", "HV", "P0", "XX":
		return http.StatusInternalServerError
	case "0L", "0P", "28":
		return http.StatusForbidden
	case "PT":
		if n, err := strconv.Atoi(code[2:]); err == nil && n >= 100 && n <= 599 {
			return n
		}
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// fromPgError converts a PostgreSQL error into PostgREST's response,
// including the RAISE SQLSTATE 'PGRST' full-control form.
func fromPgError(pe *pgconn.PgError, authed bool) *apiError {
	if pe.Code == "PGRST" {
		return fromRaisePGRST(pe)
	}
	e := newAPIError(sqlStateStatus(pe.Code, pe.Message, authed), pe.Code, pe.Message, optStr(pe.Detail), optStr(pe.Hint))
	if e.Status == http.StatusUnauthorized {
		e.Header = http.Header{"Www-Authenticate": {"Bearer"}}
	}
	return e
}

// fromRaisePGRST decodes RAISE SQLSTATE 'PGRST' USING message = '{"code",
// "message","details","hint"}', detail = '{"status","status_text","headers"}'.
func fromRaisePGRST(pe *pgconn.PgError) *apiError {
	var msg struct {
		Code    *string `json:"code"`
		Message *string `json:"message"`
		Details *string `json:"details"`
		Hint    *string `json:"hint"`
	}
	if err := json.Unmarshal([]byte(pe.Message), &msg); err != nil || msg.Code == nil || msg.Message == nil {
		return newAPIError(http.StatusInternalServerError, "PGRST121", `Could not parse JSON in the "RAISE SQLSTATE 'PGRST'" error`,
			strp("Invalid JSON value for MESSAGE: '"+pe.Message+"'"),
			strp("MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional keys: 'details', 'hint'."))
	}
	detHint := strp("DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.")
	if pe.Detail == "" {
		return newAPIError(http.StatusInternalServerError, "PGRST121", `Could not parse JSON in the "RAISE SQLSTATE 'PGRST'" error`,
			strp("DETAIL is missing in the RAISE statement"), detHint)
	}
	var det struct {
		Status  *int              `json:"status"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(pe.Detail), &det); err != nil || det.Status == nil || det.Headers == nil ||
		*det.Status < 100 || *det.Status > 599 {
		return newAPIError(http.StatusInternalServerError, "PGRST121", `Could not parse JSON in the "RAISE SQLSTATE 'PGRST'" error`,
			strp("Invalid JSON value for DETAIL: '"+pe.Detail+"'"), detHint)
	}
	e := newAPIError(*det.Status, *msg.Code, *msg.Message, msg.Details, msg.Hint)
	e.Header = http.Header{}
	for k, v := range det.Headers {
		e.Header.Set(k, v)
	}
	return e
}

// asAPIError classifies any error from the database layer.
func asAPIError(err error, authed bool) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fromPgError(pe, authed)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return errDBConnection(err)
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return errDBConnection(err)
	}
	return newAPIError(http.StatusServiceUnavailable, "PGRST001", "Database client error. Retrying the connection.", strp(err.Error()), nil)
}

// fuzzyBest returns the candidate most similar to name (case-insensitive,
// normalised Levenshtein similarity) if it reaches minScore, like the fuzzy
// set PostgREST uses for its "Perhaps you meant" hints.
func fuzzyBest(name string, candidates []string, minScore float64) (string, bool) {
	best, bestScore := "", -1.0
	ln := strings.ToLower(name)
	for _, c := range candidates {
		s := similarity(ln, strings.ToLower(c))
		if s > bestScore {
			best, bestScore = c, s
		}
	}
	return best, bestScore >= minScore && best != ""
}

func similarity(a, b string) float64 {
	ra, rb := []rune(a), []rune(b)
	n := max(len(ra), len(rb))
	if n == 0 {
		return 1
	}
	return 1 - float64(levenshtein(ra, rb))/float64(n)
}

func levenshtein(a, b []rune) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
