// Package supabasetest is a local stand-in for the parts of Supabase that
// meshhook-alerts talks to, for tests and the demo. REST is a faithful subset
// of PostgREST (v12-v14 semantics, as deployed by Supabase) served over a
// real PostgreSQL database.
package supabasetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// RESTOptions configures REST. The zero value of each field has a default.
type RESTOptions struct {
	// JWTSecret is the HS256 secret API keys and access tokens are signed with.
	JWTSecret string
	// JWKS, if set, also verifies ES256 and RS256 tokens with the keys of
	// the project's JWKS, by kid (projects with asymmetric signing keys).
	JWKS KeyLookup
	// MaxRows caps every read (PostgREST's db-max-rows, Supabase's max_rows),
	// silently. Defaults to 1000.
	MaxRows int
	// Schemas are the exposed schemas; the first is the default.
	// Defaults to ["public"].
	Schemas []string
	// Logger receives one debug line per request. Defaults to zap.NewNop().
	Logger *zap.Logger
	// MaxBodyBytes limits request bodies. Defaults to 32 MiB.
	MaxBodyBytes int64
	// SchemaCacheTTL is how long the tables and functions requests name
	// are taken from the schema cache before being read from the catalog
	// again. Defaults to one second; a negative value reads the catalog on
	// every request. Whatever it is, a table or function created meanwhile
	// is found at once, and a request that fails because a cached one
	// changed is served again with the catalog read afresh; see
	// ReloadSchema.
	SchemaCacheTTL time.Duration
}

// REST serves PostgREST's HTTP API (the part under Supabase's /rest/v1)
// over a PostgreSQL pool. Mount it with
// http.StripPrefix("/rest/v1", rest).
//
// Every request runs in one transaction with the role and claims of its JWT
// (anon, authenticated or service_role), so row level security applies as on
// Supabase. The transaction's BEGIN, its settings and the request's
// statement reach PostgreSQL in one pipeline; COMMIT follows once the
// response is known to be a success. Tables and functions are looked up
// in a schema cache (RESTOptions.SchemaCacheTTL). REST is safe for
// concurrent use; it starts no goroutines.
//
// For tests of clients it can inject faults: FailNext, StallNext,
// SetLatency; Requests counts requests.
type REST struct {
	pool   *pgxpool.Pool
	opts   RESTOptions
	keys   jwtKeys
	log    *zap.Logger
	schema *schemaCache

	requests atomic.Int64

	mu         sync.Mutex    // guards the fields below
	failN      int           // answer the next failN requests with failStatus
	failStatus int           //
	stallN     int           // hang the next stallN requests
	release    chan struct{} // closed by ReleaseStalled
	latency    time.Duration // added before each request
}

// NewREST returns a handler serving the pool's exposed schemas.
func NewREST(pool *pgxpool.Pool, opts RESTOptions) *REST {
	if opts.MaxRows <= 0 {
		opts.MaxRows = 1000
	}
	if len(opts.Schemas) == 0 {
		opts.Schemas = []string{"public"}
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	if opts.SchemaCacheTTL == 0 {
		opts.SchemaCacheTTL = defaultSchemaCacheTTL
	}
	return &REST{
		pool:    pool,
		opts:    opts,
		keys:    jwtKeys{secret: []byte(opts.JWTSecret), jwks: opts.JWKS},
		log:     opts.Logger,
		schema:  newSchemaCache(pool, opts.SchemaCacheTTL),
		release: make(chan struct{}),
	}
}

// ReloadSchema empties the schema cache, like PostgREST on NOTIFY pgrst,
// 'reload schema': the next requests read the catalog again.
func (r *REST) ReloadSchema() { r.schema.reset() }

// ListenSchemaReloads listens on PostgreSQL's "pgrst" channel, as PostgREST
// does, and empties the schema cache whenever 'reload schema' (or an empty
// payload) arrives, until ctx is done; it then returns nil. It uses a
// connection of its own, made with the pool's configuration, and returns
// an error when that connection fails. Run it in a goroutine of your own
// if the schema changes while REST serves and must be seen before the
// schema cache expires.
func (r *REST) ListenSchemaReloads(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("listen for schema reloads: connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "listen pgrst"); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("listen for schema reloads: %w", err)
	}
	// Changes made before LISTEN took effect are not announced to us.
	r.ReloadSchema()
	r.log.Debug("listening for schema reloads")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("listen for schema reloads: %w", err)
		}
		if p := strings.TrimSpace(n.Payload); p == "" || p == "reload schema" {
			r.ReloadSchema()
			r.log.Debug("schema cache reloaded", zap.String("payload", n.Payload))
		}
	}
}

// Requests is the number of requests received so far (including failed,
// stalled and rejected ones).
func (r *REST) Requests() int64 { return r.requests.Load() }

// FailNext answers the next n requests with status instead of serving them.
// 502 gets an HTML gateway page (like Supabase's edge); other statuses a
// PostgREST-shaped JSON error. n <= 0 cancels pending failures.
func (r *REST) FailNext(n int, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failN, r.failStatus = max(n, 0), status
}

// StallNext makes the next n requests hang until their context is cancelled
// (client gone or server shutting down) or ReleaseStalled is called, after
// which they are served normally. n <= 0 cancels pending stalls.
func (r *REST) StallNext(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stallN = max(n, 0)
}

// ReleaseStalled lets every currently stalled request proceed.
func (r *REST) ReleaseStalled() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.release)
	r.release = make(chan struct{})
}

// SetLatency delays every request by d before it is served (0 disables).
func (r *REST) SetLatency(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latency = max(d, 0)
}

// fault takes the fault decision for one request.
func (r *REST) fault() (failStatus int, stall <-chan struct{}, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failN > 0 {
		r.failN--
		return r.failStatus, nil, 0
	}
	if r.stallN > 0 {
		r.stallN--
		stall = r.release
	}
	return 0, stall, r.latency
}

// response is a complete HTTP answer.
type response struct {
	status  int
	header  http.Header
	body    []byte
	errCode string // the PostgREST or SQLSTATE code of an error
}

func (resp *response) setHeader(k, v string) {
	if resp.header == nil {
		resp.header = http.Header{}
	}
	resp.header.Set(k, v)
}

func errorResponse(e *apiError) *response {
	resp := &response{status: e.Status, header: http.Header{}, body: e.body(), errCode: e.Code}
	resp.header.Set("Content-Type", "application/json; charset=utf-8")
	resp.header.Set("Proxy-Status", "PostgREST; error="+e.Code)
	for k, vs := range e.Header {
		resp.header[k] = vs
	}
	return resp
}

const badGatewayHTML = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n" +
	"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"

// faultResponse is the answer of an injected failure.
func faultResponse(status int) *response {
	if status == http.StatusBadGateway {
		return &response{status: status, header: http.Header{"Content-Type": {"text/html"}}, body: []byte(badGatewayHTML)}
	}
	details := strp("injected by supabasetest.REST.FailNext")
	var e *apiError
	switch status {
	case http.StatusServiceUnavailable:
		e = newAPIError(status, "PGRST001", "Database client error. Retrying the connection.", details, nil)
	case http.StatusGatewayTimeout:
		e = newAPIError(status, "PGRST003", "Timed out acquiring connection from connection pool.", details, nil)
	case http.StatusInternalServerError:
		e = newAPIError(status, "XX000", "internal server error", details, nil)
	default:
		e = newAPIError(status, "PGRST"+strconv.Itoa(status), http.StatusText(status), details, nil)
	}
	return errorResponse(e)
}

// ServeHTTP implements http.Handler.
func (r *REST) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	start := time.Now()
	resp := r.answer(req)
	log := r.log.With(zap.String("method", req.Method), zap.String("path", req.URL.Path),
		zap.String("query", redactQuery(req.URL.RawQuery)), zap.Duration("duration", time.Since(start)))
	if resp == nil {
		log.Debug("rest request abandoned by the client")
		return
	}
	for k, vs := range resp.header {
		w.Header()[k] = vs
	}
	if resp.body != nil && req.Method != http.MethodHead {
		w.Header().Set("Content-Length", strconv.Itoa(len(resp.body)))
	}
	w.WriteHeader(resp.status)
	if req.Method != http.MethodHead {
		_, _ = w.Write(resp.body)
	}
	log.Debug("rest request", zap.Int("status", resp.status))
}

// answer applies injected faults, then serves the request; nil means the
// client went away.
func (r *REST) answer(req *http.Request) *response {
	ctx := req.Context()
	failStatus, stall, latency := r.fault()
	if failStatus != 0 {
		return faultResponse(failStatus)
	}
	if stall != nil || latency > 0 {
		// net/http notices a client hanging up only once the request body
		// has been read, so buffer it before waiting.
		bufferBody(req, r.opts.MaxBodyBytes)
	}
	if stall != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-stall:
		}
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	return r.serve(req)
}

// bufferBody reads up to limit+1 bytes of the body into memory and puts
// them back as the body, so the server starts watching the connection.
func bufferBody(req *http.Request, limit int64) {
	if req.Body == nil || req.Body == http.NoBody {
		return
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		b = nil
	}
	_ = req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(b))
}

// redactQuery hides an apikey query parameter from logs.
func redactQuery(raw string) string {
	if !strings.Contains(raw, "apikey") {
		return raw
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		if strings.HasPrefix(p, "apikey=") {
			parts[i] = "apikey=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

// target is what a path addresses.
type target int

const (
	targetRoot target = iota
	targetTable
	targetRoutine
)

// request is one parsed API request.
type request struct {
	rest      *REST
	method    string
	target    target
	name      string // table or function
	schema    string
	byProfile bool
	auth      *authResult
	params    []queryParam
	q         *queryParams
	rng       nonnegRange
	prefs     preferences
	accept    string
	pay       *payload
	hreq      *http.Request // the incoming request

	// The schema cache entries the request used, when they came from the
	// cache (not read from the catalog for it).
	cachedTable    *table
	cachedRoutines []*routine
}

func (rq *request) authed() bool { return rq.auth.Role != anonRole }

// serve handles one request; nil means the client is gone.
func (r *REST) serve(req *http.Request) *response {
	ctx := req.Context()
	apiKey, gw := checkAPIKey(r.keys, req)
	if gw != nil {
		return gw
	}
	rq := &request{rest: r, method: req.Method, hreq: req, accept: req.Header.Get("Accept")}

	// PostgREST authenticates first.
	token, hasToken := apiKey, true
	if h := req.Header.Get("Authorization"); h != "" {
		token, hasToken = bearerToken(h)
	}
	if hasToken {
		auth, err := authenticate(r.keys, token, time.Now())
		if err != nil {
			return errorResponse(err)
		}
		rq.auth = auth
	} else {
		rq.auth = &authResult{Role: anonRole, ClaimsJSON: `{"role":"anon"}`}
	}

	if e := rq.resolvePath(req); e != nil {
		return errorResponse(e)
	}
	if e := rq.resolveSchema(req); e != nil {
		return errorResponse(e)
	}
	if e := rq.checkMethod(); e != nil {
		return errorResponse(e)
	}
	if rq.method == http.MethodOptions {
		return rq.options()
	}
	if rq.target == targetRoot {
		return rq.root(ctx)
	}

	for _, p := range parseRawQuery(req.URL.RawQuery) {
		if p.Key != "apikey" {
			rq.params = append(rq.params, p)
		}
	}
	rpcRead := rq.target == targetRoutine && (rq.method == http.MethodGet || rq.method == http.MethodHead)
	q, e := parseQueryParams(rq.params, rpcRead)
	if e != nil {
		return errorResponse(e)
	}
	rq.q = q
	if rq.rng, e = topLevelRange(rq.method, req.Header.Get("Range"), q); e != nil {
		return errorResponse(e)
	}
	rq.prefs = parsePreferences(req.Header.Values("Prefer"))
	if e := rq.readPayload(req); e != nil {
		return errorResponse(e)
	}

	resp := rq.serveTarget(ctx)
	if rq.servedStale(ctx, resp) {
		resp = rq.serveTarget(ctx)
	}
	return resp
}

// serveTarget answers a request on a table, view or function.
func (rq *request) serveTarget(ctx context.Context) *response {
	rq.cachedTable, rq.cachedRoutines = nil, nil
	if rq.target == targetRoutine {
		return rq.call(ctx)
	}
	tbl, cached, err := rq.rest.schema.table(ctx, rq.schema, rq.name, false)
	if err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			err = errBegin{err} // no usable connection: answered as if BEGIN failed
		}
		return rq.failure(ctx, err)
	}
	if tbl == nil {
		names, err := tableNames(ctx, rq.rest.pool, rq.schema)
		if err != nil {
			return rq.failure(ctx, err)
		}
		return errorResponse(errTableNotFound(rq.schema, rq.name, names))
	}
	if cached {
		rq.cachedTable = tbl
	}
	var st *statement
	var e *apiError
	switch rq.method {
	case http.MethodGet, http.MethodHead:
		st, e = rq.read(tbl)
	case http.MethodPost:
		st, e = rq.insert(tbl, false)
	case http.MethodPut:
		st, e = rq.insert(tbl, true)
	case http.MethodPatch:
		st, e = rq.update(tbl)
	default:
		st, e = rq.delete(tbl)
	}
	if e != nil {
		return errorResponse(e)
	}
	return rq.exec(ctx, st)
}

// servedStale reports whether resp is an error that cached catalog entries
// which have changed since may explain; the cache then holds the new ones.
func (rq *request) servedStale(ctx context.Context, resp *response) bool {
	if resp == nil || !staleCatalogError(resp.errCode) || ctx.Err() != nil {
		return false
	}
	var changed bool
	var err error
	switch {
	case rq.cachedTable != nil:
		changed, err = rq.rest.schema.tableChanged(ctx, rq.schema, rq.name, rq.cachedTable)
	case rq.cachedRoutines != nil:
		changed, err = rq.rest.schema.routinesChanged(ctx, rq.schema, rq.name, rq.cachedRoutines)
	}
	return err == nil && changed
}

// resolvePath splits the (already prefix-stripped) path like PostgREST:
// "/" is the root, "/t" a table or view, "/rpc/f" a function.
func (rq *request) resolvePath(req *http.Request) *apiError {
	raw := strings.TrimPrefix(req.URL.EscapedPath(), "/")
	if raw == "" {
		rq.target = targetRoot
		return nil
	}
	var segs []string
	for _, s := range strings.Split(raw, "/") {
		u, err := url.PathUnescape(s)
		if err != nil {
			return errInvalidPath()
		}
		segs = append(segs, u)
	}
	switch {
	case len(segs) == 1:
		rq.target, rq.name = targetTable, segs[0]
	case len(segs) == 2 && segs[0] == "rpc":
		rq.target, rq.name = targetRoutine, segs[1]
	default:
		return errInvalidPath()
	}
	return nil
}

// resolveSchema applies Accept-Profile (reads) / Content-Profile (writes).
func (rq *request) resolveSchema(req *http.Request) *apiError {
	schemas := rq.rest.opts.Schemas
	var profile string
	switch rq.method {
	case http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete:
		profile = req.Header.Get("Content-Profile")
	default:
		profile = req.Header.Get("Accept-Profile")
	}
	if profile == "" {
		rq.schema, rq.byProfile = schemas[0], len(schemas) != 1
		return nil
	}
	for _, s := range schemas {
		if s == profile {
			rq.schema, rq.byProfile = s, true
			return nil
		}
	}
	return errUnacceptableSchema(profile, schemas)
}

func (rq *request) checkMethod() *apiError {
	switch rq.target {
	case targetRoutine:
		switch rq.method {
		case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodOptions:
			return nil
		}
		return errInvalidRPCMethod(rq.method)
	case targetTable:
		switch rq.method {
		case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
			return nil
		}
	default:
		switch rq.method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return nil
		}
	}
	return errUnsupportedMethod(rq.method)
}

func (rq *request) options() *response {
	allow := "OPTIONS,GET,HEAD"
	switch rq.target {
	case targetTable:
		allow = "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE"
	case targetRoutine:
		allow = "OPTIONS,GET,HEAD,POST"
	}
	return &response{status: http.StatusOK, header: http.Header{
		"Allow":                       {allow},
		"Access-Control-Allow-Origin": {"*"},
	}, body: []byte{}}
}

// payload is a parsed request body.
type payload struct {
	raw      string
	isObject bool
	keys     []string            // sorted column/argument names
	form     map[string][]string // application/x-www-form-urlencoded RPC arguments
}

// readPayload reads and validates the body of writes and POST /rpc
// (PostgREST.ApiRequest.Payload).
func (rq *request) readPayload(req *http.Request) *apiError {
	isRoutine := rq.target == targetRoutine
	switch {
	case isRoutine && rq.method == http.MethodPost:
	case !isRoutine && (rq.method == http.MethodPost || rq.method == http.MethodPatch || rq.method == http.MethodPut):
	default:
		return nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, req.Body, rq.rest.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			e := newAPIError(http.StatusRequestEntityTooLarge, "PGRST102", "Request body too large", nil, nil)
			return e
		}
		return errInvalidBody("Could not read the request body: " + err.Error())
	}
	ct := req.Header.Get("Content-Type")
	mime, _ := parseMediaType(ct)
	if ct == "" {
		mime = "application/json"
	}
	pay := &payload{raw: string(body)}
	rq.pay = pay
	switch mime {
	case "application/json":
	case "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return errInvalidBody("Empty or invalid json")
		}
		if isRoutine {
			pay.form = vals
			for k := range vals {
				pay.keys = append(pay.keys, k)
			}
			sort.Strings(pay.keys)
			return nil
		}
		obj := map[string]string{}
		for k, v := range vals {
			obj[k] = v[len(v)-1]
		}
		b, _ := json.Marshal(obj)
		pay.raw, pay.isObject = string(b), true
		for k := range obj {
			pay.keys = append(pay.keys, k)
		}
		sort.Strings(pay.keys)
		return nil
	default:
		return errInvalidBody("Content-Type not acceptable: " + mime)
	}
	trimmed := strings.TrimLeft(pay.raw, " \t\r\n")
	pay.isObject = strings.HasPrefix(trimmed, "{")
	if rq.q.HasColumns {
		pay.keys = append([]string(nil), rq.q.Columns...)
		return nil // sent to the database as is, like PostgREST's RawJSON
	}
	if trimmed == "" && isRoutine {
		pay.raw, pay.isObject = "{}", true
		return nil
	}
	keys, valid, ok := payloadKeys(body)
	if !valid {
		return errInvalidBody("Empty or invalid json")
	}
	if !ok {
		return errInvalidBody("All object keys must match")
	}
	if keys == nil && !pay.isObject { // [] or a JSON scalar: no rows
		pay.raw = "[]"
	}
	pay.keys = keys
	return nil
}

// payloadKeys returns the sorted keys of an object, or of an array of
// objects that all have the same keys (nil for a scalar or an empty array);
// valid is false when body is not JSON, ok false for mixed arrays. Bodies
// are read once to validate and once to split, however large.
func payloadKeys(body []byte) (keys []string, valid, ok bool) {
	switch trimmed := bytes.TrimLeft(body, " \t\r\n"); {
	case len(trimmed) > 0 && trimmed[0] == '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, false, false
		}
		return sortedKeys(obj), true, true
	case len(trimmed) > 0 && trimmed[0] == '[':
		var arr []json.RawMessage
		if err := json.Unmarshal(body, &arr); err != nil {
			return nil, false, false
		}
		var first []string
		for i, el := range arr {
			if t := bytes.TrimLeft(el, " \t\r\n"); len(t) == 0 || t[0] != '{' {
				return nil, true, false
			}
			keys := objectKeys(el)
			if i == 0 {
				first = keys
				continue
			}
			if !slices.Equal(keys, first) {
				return nil, true, false
			}
		}
		if len(arr) > 0 && first == nil {
			first = []string{}
		}
		return first, true, true
	default:
		if !json.Valid(body) {
			return nil, false, false
		}
		return nil, true, true // a scalar: treated as an empty array
	}
}

// objectKeys returns the sorted top-level keys of a JSON object already
// known to be valid, without decoding its values.
func objectKeys(obj []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(obj))
	keys := []string{}
	if _, err := dec.Token(); err != nil { // {
		return keys
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			break
		}
		k, _ := t.(string)
		keys = append(keys, k)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			break
		}
	}
	sort.Strings(keys)
	return slices.Compact(keys) // a repeated key counts once, as in a map
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkStrict refuses unknown preferences under Prefer: handling=strict.
func (rq *request) checkStrict() *apiError {
	if rq.prefs.Handling == "strict" && len(rq.prefs.Invalid) > 0 {
		return errInvalidPreferences(rq.prefs.Invalid)
	}
	return nil
}

// contentRange renders Content-Range like PostgREST's contentRangeH.
func contentRange(lower, upper int64, total *int64) string {
	rangeStr := "*"
	if (total == nil || *total != 0) && lower <= upper {
		rangeStr = strconv.FormatInt(lower, 10) + "-" + strconv.FormatInt(upper, 10)
	}
	totalStr := "*"
	if total != nil {
		totalStr = strconv.FormatInt(*total, 10)
	}
	return rangeStr + "/" + totalStr
}

// rangeStatus is PostgREST's rangeStatusHeader.
func rangeStatus(top nonnegRange, pageTotal int64, total *int64) (int, string) {
	lower := top.offset()
	upper := lower + pageTotal - 1
	cr := contentRange(lower, upper, total)
	switch {
	case total == nil:
		return http.StatusOK, cr
	case lower > *total:
		return http.StatusRequestedRangeNotSatisfiable, cr
	case 1+upper-lower < *total:
		return http.StatusPartialContent, cr
	}
	return http.StatusOK, cr
}

// finish applies the response.status / response.headers GUCs a function may
// have set, and the common headers.
func (rq *request) finish(resp *response, m *mainResult, applied string, contentType string) (*response, error) {
	if resp.header == nil {
		resp.header = http.Header{}
	}
	if applied != "" {
		resp.header.Set("Preference-Applied", applied)
	}
	if contentType != "" {
		resp.header.Set("Content-Type", contentType)
		if rq.byProfile {
			resp.header.Set("Content-Profile", rq.schema)
		}
	}
	if m.GUCHdrs != nil {
		var hs []map[string]string
		if err := json.Unmarshal([]byte(*m.GUCHdrs), &hs); err != nil {
			return nil, newAPIError(http.StatusInternalServerError, "PGRST111",
				"response.headers guc must be a JSON array composed of objects with a single key and a string value", nil, nil)
		}
		for _, h := range hs {
			if len(h) != 1 {
				return nil, newAPIError(http.StatusInternalServerError, "PGRST111",
					"response.headers guc must be a JSON array composed of objects with a single key and a string value", nil, nil)
			}
			for k, v := range h {
				resp.header.Set(k, v)
			}
		}
	}
	if m.GUCStatus != nil {
		n, err := strconv.Atoi(strings.TrimSpace(*m.GUCStatus))
		if err != nil || n < 100 || n > 599 {
			return nil, newAPIError(http.StatusInternalServerError, "PGRST112", "response.status guc must be a valid status code", nil, nil)
		}
		resp.status = n
	}
	return resp, nil
}

// ---------------------------------------------------------------------------
// Tables and views.

func (rq *request) read(tbl *table) (*statement, *apiError) {
	if e := rq.checkStrict(); e != nil {
		return nil, e
	}
	media, e := negotiate(rq.accept)
	if e != nil {
		return nil, e
	}
	rng := rq.rng
	if !rng.hasLimitZero() {
		rng = restrictRange(int64(rq.rest.opts.MaxRows), rng)
	}
	body := bodyArray
	if media.Kind == mediaObject {
		body = bodyObject
	}
	if rq.method == http.MethodHead {
		body = bodyNone
	}
	sql, args := buildRead(readSpec{tbl: tbl, q: rq.q, rng: rng, count: rq.prefs.Count != "", body: body, strip: media.Strip})
	return &statement{sql: sql, args: args, readOnly: true, answer: func(m *mainResult) (*response, error) {
		return rq.answerRead(tbl, media, m)
	}}, nil
}

// answerRead answers a read from its row.
func (rq *request) answerRead(tbl *table, media mediaType, m *mainResult) (*response, error) {
	if media.Kind == mediaObject && m.PageTotal != 1 {
		return nil, errSingular(m.PageTotal)
	}
	status, cr := rangeStatus(rq.rng, m.PageTotal, m.Total)
	resp := &response{status: status, header: http.Header{}, body: []byte(m.Body)}
	resp.header.Set("Content-Range", cr)
	loc := "/" + tbl.Name
	if rq.q.Canonical != "" {
		loc += "?" + rq.q.Canonical
	}
	resp.header.Set("Content-Location", loc)
	if status == http.StatusRequestedRangeNotSatisfiable {
		resp.body = errRangeOutOfBounds(rq.rng.offset(), *m.Total).body()
	}
	if rq.method == http.MethodHead {
		resp.body = nil
	}
	return rq.finish(resp, m, rq.prefs.applied(prefRead, false), media.contentType())
}

// payloadColumns resolves the payload's keys against the table (PGRST204).
func (rq *request) payloadColumns(tbl *table) ([]*column, *apiError) {
	cols := make([]*column, 0, len(rq.pay.keys))
	for _, k := range rq.pay.keys {
		c := tbl.column(k)
		if c == nil {
			return nil, errColumnNotFound(tbl.Name, k)
		}
		cols = append(cols, c)
	}
	return cols, nil
}

func (rq *request) returnMode() returnMode {
	switch rq.prefs.Return {
	case "representation":
		return returnRepresentation
	case "headers-only":
		return returnHeadersOnly
	}
	return returnMinimal
}

// writeSpec prepares what insert, update and delete share.
func (rq *request) writeSpec(tbl *table, withPayload bool) (writeSpec, mediaType, *apiError) {
	w := writeSpec{tbl: tbl, q: rq.q, ret: rq.returnMode()}
	if withPayload {
		cols, e := rq.payloadColumns(tbl)
		if e != nil {
			return w, mediaType{}, e
		}
		w.payload = jsonBodySpec{body: rq.pay.raw, isObject: rq.pay.isObject, cols: cols, applyDefaults: rq.prefs.Missing == "default",
			onlyCols: !rq.q.HasColumns}
	}
	if e := rq.checkStrict(); e != nil {
		return w, mediaType{}, e
	}
	media, e := negotiate(rq.accept)
	if e != nil {
		return w, mediaType{}, e
	}
	w.body, w.strip = bodyArray, media.Strip
	if media.Kind == mediaObject {
		w.body = bodyObject
	}
	return w, media, nil
}

// representation returns the body and content type for return=representation.
func representation(w writeSpec, m *mainResult, media mediaType) ([]byte, string) {
	if w.ret != returnRepresentation {
		return nil, ""
	}
	return []byte(m.Body), media.contentType()
}

func (rq *request) insert(tbl *table, put bool) (*statement, *apiError) {
	w, media, e := rq.writeSpec(tbl, true)
	if e != nil {
		return nil, e
	}
	if put {
		if e := checkPutFilters(rq.q, tbl); e != nil {
			return nil, e
		}
		w.put, w.onConflict = true, tbl.PK
	} else {
		w.resolution = rq.prefs.Resolution
		w.onConflict = tbl.PK
		if rq.q.HasOnConflict {
			w.onConflict = rq.q.OnConflict
		}
	}
	sql, args := buildInsert(w)
	return &statement{sql: sql, args: args, answer: func(m *mainResult) (*response, error) {
		return rq.answerInsert(tbl, w, media, m)
	}}, nil
}

// answerInsert answers a POST or PUT from its row.
func (rq *request) answerInsert(tbl *table, w writeSpec, media mediaType, m *mainResult) (*response, error) {
	put := w.put
	if put && m.PageTotal != 1 {
		return nil, errPutMatchingPK()
	}
	if media.Kind == mediaObject && m.PageTotal != 1 {
		return nil, errSingular(m.PageTotal)
	}
	resp := &response{header: http.Header{}}
	body, ct := representation(w, m, media)
	resp.body = body
	if put {
		switch {
		case w.ret != returnRepresentation:
			resp.status = http.StatusNoContent
		case m.Inserted != nil && *m.Inserted > 0:
			resp.status = http.StatusCreated
		default:
			resp.status = http.StatusOK
		}
		return rq.finish(resp, m, rq.prefs.applied(prefUpsertPut, false), ct)
	}
	resp.status = http.StatusCreated
	if w.resolution == "merge-duplicates" && (m.Inserted == nil || *m.Inserted <= 0) {
		resp.status = http.StatusOK
	}
	if len(m.Location) > 0 {
		pairs := make([]string, len(m.Location))
		for i, kv := range m.Location {
			k, v, _ := strings.Cut(kv, "=")
			pairs[i] = url.QueryEscape(k) + "=" + url.QueryEscape(v)
		}
		resp.header.Set("Location", "/"+tbl.Name+"?"+strings.Join(pairs, "&"))
	}
	var total *int64
	if rq.prefs.Count != "" {
		total = &m.PageTotal
	}
	resp.header.Set("Content-Range", contentRange(1, 0, total))
	resolutionApplies := len(tbl.PK) > 0 || rq.q.HasOnConflict
	return rq.finish(resp, m, rq.prefs.applied(prefInsert, resolutionApplies), ct)
}

// checkPutFilters enforces PUT's rule: eq filters on exactly the primary key.
func checkPutFilters(q *queryParams, tbl *table) *apiError {
	if len(q.Logic) > 0 || len(tbl.PK) == 0 {
		return errInvalidFilters()
	}
	fields := map[string]bool{}
	for _, f := range q.Filters {
		if f.Op.Negate || f.Op.Op != "eq" || f.Op.Quant != "" || len(f.Field.Path) > 0 {
			return errInvalidFilters()
		}
		fields[f.Field.Name] = true
	}
	if len(fields) != len(tbl.PK) {
		return errInvalidFilters()
	}
	for _, pk := range tbl.PK {
		if !fields[pk] {
			return errInvalidFilters()
		}
	}
	return nil
}

// checkMaxAffected enforces Prefer: max-affected with handling=strict.
func (rq *request) checkMaxAffected(n int64) *apiError {
	if rq.prefs.Handling == "strict" && rq.prefs.HasMaxAff && n > rq.prefs.MaxAffected {
		return errMaxAffected(n)
	}
	return nil
}

func (rq *request) update(tbl *table) (*statement, *apiError) {
	// Content-Range of an update covers the affected rows: 0-(n-1).
	return rq.mutate(tbl, true, buildUpdate, prefUpdate, func(n int64) (int64, int64) { return 0, n - 1 })
}

func (rq *request) delete(tbl *table) (*statement, *apiError) {
	// PostgREST answers a delete with an empty range, "*/n".
	return rq.mutate(tbl, false, buildDelete, prefDelete, func(int64) (int64, int64) { return 1, 0 })
}

// mutate prepares an UPDATE or DELETE, answered the way PostgREST does.
func (rq *request) mutate(tbl *table, withPayload bool,
	build func(writeSpec) (string, []any), kind prefKind, span func(n int64) (from, to int64)) (*statement, *apiError) {
	w, media, e := rq.writeSpec(tbl, withPayload)
	if e != nil {
		return nil, e
	}
	sql, args := build(w)
	return &statement{sql: sql, args: args, answer: func(m *mainResult) (*response, error) {
		return rq.answerMutate(w, media, kind, span, m)
	}}, nil
}

// answerMutate answers an UPDATE or DELETE from its row.
func (rq *request) answerMutate(w writeSpec, media mediaType, kind prefKind, span func(n int64) (from, to int64),
	m *mainResult) (*response, error) {
	if media.Kind == mediaObject && m.PageTotal != 1 {
		return nil, errSingular(m.PageTotal)
	}
	if e := rq.checkMaxAffected(m.PageTotal); e != nil {
		return nil, e
	}
	resp := &response{status: http.StatusNoContent, header: http.Header{}}
	body, ct := representation(w, m, media)
	if body != nil {
		resp.status, resp.body = http.StatusOK, body
	}
	var total *int64
	if rq.prefs.Count != "" {
		total = &m.PageTotal
	}
	from, to := span(m.PageTotal)
	resp.header.Set("Content-Range", contentRange(from, to, total))
	return rq.finish(resp, m, rq.prefs.applied(kind, false), ct)
}

// ---------------------------------------------------------------------------
// Functions.

// call serves /rpc/<fn>. The function is resolved before the transaction
// starts so that stable and immutable functions run read-only, as in
// PostgREST.
func (rq *request) call(ctx context.Context) *response {
	isPost := rq.method == http.MethodPost
	var keys []string
	direct := map[string][]string{}
	switch {
	case isPost && rq.pay.form != nil:
		keys, direct = rq.pay.keys, rq.pay.form
	case isPost:
		keys = rq.pay.keys
	default:
		for _, a := range rq.q.RPCArgs {
			if _, ok := direct[a.Name]; !ok {
				keys = append(keys, a.Name)
			}
			direct[a.Name] = append(direct[a.Name], a.Value)
		}
	}
	cands, cached, err := rq.rest.schema.routines(ctx, rq.schema, rq.name, false)
	if err != nil {
		return rq.failure(ctx, err)
	}
	if cached {
		rq.cachedRoutines = cands
	}
	jsonBody := isPost && rq.pay.form == nil
	fn, e, ok := matchRoutine(cands, keys, jsonBody)
	if e != nil {
		return errorResponse(e)
	}
	if !ok {
		names, err := routineNames(ctx, rq.rest.pool, rq.schema)
		if err != nil {
			return rq.failure(ctx, err)
		}
		return errorResponse(errNoRPC(rq.schema, rq.name, keys, jsonBody, names, cands))
	}
	if e := rq.checkStrict(); e != nil {
		return errorResponse(e)
	}
	if rq.prefs.Handling == "strict" && rq.prefs.HasMaxAff && !fn.RetSet {
		return errorResponse(newAPIError(http.StatusBadRequest, "PGRST128",
			"Function must return SETOF or TABLE when max-affected preference is used with handling=strict", nil, nil))
	}
	media, e := negotiate(rq.accept)
	if e != nil {
		return errorResponse(e)
	}
	st := rq.callStatement(fn, keys, direct, jsonBody, media)
	st.readOnly = !isPost || fn.Volatility != "v"
	return rq.exec(ctx, st)
}

// callStatement prepares the call of fn.
func (rq *request) callStatement(fn *routine, keys []string, direct map[string][]string, jsonBody bool,
	media mediaType) *statement {
	spec := callSpec{fn: fn, q: rq.q, count: rq.prefs.Count != "", strip: media.Strip, direct: direct}
	keySet := map[string]bool{}
	for _, k := range keys {
		keySet[k] = true
	}
	switch {
	case len(fn.Params) == 1 && fn.Params[0].Name == "" && jsonBody:
		spec.jsonArg = &rq.pay.raw
	default:
		for _, p := range fn.Params {
			if keySet[p.Name] {
				spec.params = append(spec.params, p)
			}
		}
		if jsonBody {
			cols := make([]*column, len(spec.params))
			for i, p := range spec.params {
				cols[i] = &column{Name: p.Name, Type: p.SQLType}
			}
			spec.json = &jsonBodySpec{body: rq.pay.raw, isObject: rq.pay.isObject, cols: cols, limitOne: true,
				onlyCols: !rq.q.HasColumns}
		}
	}
	spec.rng = rq.rng
	if !spec.rng.hasLimitZero() {
		spec.rng = restrictRange(int64(rq.rest.opts.MaxRows), spec.rng)
	}
	single := media.Kind == mediaObject
	switch {
	case fn.Void:
		spec.body = bodyNone
	case !fn.Composite && (single || !fn.RetSet):
		spec.body = bodyScalarObject
	case !fn.Composite:
		spec.body = bodyScalarArray
	case single || !fn.RetSet:
		spec.body = bodyObject
	default:
		spec.body = bodyArray
	}
	if rq.method == http.MethodHead {
		spec.body = bodyNone
	}
	sql, args := buildCall(spec)
	return &statement{sql: sql, args: args, answer: func(m *mainResult) (*response, error) {
		return rq.answerCall(fn, single, media, m)
	}}
}

// answerCall answers a function call from its row.
func (rq *request) answerCall(fn *routine, single bool, media mediaType, m *mainResult) (*response, error) {
	if single && m.PageTotal != 1 {
		return nil, errSingular(m.PageTotal)
	}
	if e := rq.checkMaxAffected(m.PageTotal); e != nil {
		return nil, e
	}
	status, cr := rangeStatus(rq.rng, m.PageTotal, m.Total)
	resp := &response{status: status, header: http.Header{}}
	resp.header.Set("Content-Range", cr)
	ct := ""
	switch {
	case fn.Void:
		resp.status = http.StatusNoContent
	case status == http.StatusRequestedRangeNotSatisfiable:
		resp.body, ct = errRangeOutOfBounds(rq.rng.offset(), *m.Total).body(), media.contentType()
	default:
		resp.body, ct = []byte(m.Body), media.contentType()
	}
	if rq.method == http.MethodHead {
		resp.body = nil
	}
	return rq.finish(resp, m, rq.prefs.applied(prefCall, false), ct)
}

// ---------------------------------------------------------------------------
// Root.

// root answers GET / with a minimal OpenAPI (Swagger 2.0) description of the
// exposed schema: its tables, views and functions as paths.
func (rq *request) root(ctx context.Context) *response {
	return rq.inTx(ctx, true, func(ctx context.Context, tx pgx.Tx) (*response, bool, error) {
		tables, err := tableNames(ctx, tx, rq.schema)
		if err != nil {
			return nil, false, err
		}
		fns, err := routineNames(ctx, tx, rq.schema)
		if err != nil {
			return nil, false, err
		}
		paths := map[string]any{"/": map[string]any{}}
		for _, t := range tables {
			paths["/"+t] = map[string]any{}
		}
		for _, f := range fns {
			paths["/rpc/"+f] = map[string]any{}
		}
		doc := map[string]any{
			"swagger":  "2.0",
			"info":     map[string]any{"title": "supabasetest PostgREST stand-in", "version": "14"},
			"basePath": "/",
			"schemes":  []string{"http"},
			"consumes": []string{"application/json"},
			"produces": []string{"application/json"},
			"paths":    paths,
		}
		b, err := json.Marshal(doc)
		if err != nil {
			return nil, false, fmt.Errorf("encode openapi: %w", err)
		}
		return &response{status: http.StatusOK, header: http.Header{
			"Content-Type": {"application/openapi+json; charset=utf-8"},
		}, body: b}, true, nil
	})
}
