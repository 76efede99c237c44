package supabasetest

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file parses PostgREST requests (query string, Prefer, Range, Accept)
// into plain values. Nothing here touches the database; the grammar follows
// PostgREST.ApiRequest.QueryParams (v12-v14).

// queryParam is one decoded key=value pair of the query string.
type queryParam struct {
	Key      string
	Value    string
	HasValue bool // false for a bare "key" without '='
}

// parseRawQuery splits a raw query string the way PostgREST's
// parseQueryReplacePlus does: '&' and ';' separate pairs, '+' is a space and
// percent-decoding is lenient (a malformed escape is kept literally).
func parseRawQuery(raw string) []queryParam {
	var out []queryParam
	for _, part := range strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, has := strings.Cut(part, "=")
		out = append(out, queryParam{Key: unescapeQuery(k), Value: unescapeQuery(v), HasValue: has})
	}
	return out
}

func unescapeQuery(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// urlEncodeStrict percent-encodes everything but RFC 3986 unreserved characters.
func urlEncodeStrict(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// canonicalQuery renders the parameters sorted by key (PostgREST's qsCanonical,
// used in Content-Location).
func canonicalQuery(params []queryParam) string {
	sorted := append([]queryParam(nil), params...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	parts := make([]string, len(sorted))
	for i, p := range sorted {
		parts[i] = urlEncodeStrict(p.Key) + "=" + urlEncodeStrict(p.Value)
	}
	return strings.Join(parts, "&")
}

// jsonOp is one JSON path step: "->" or "->>" with a key or an array index.
type jsonOp struct {
	Arrow   string // "->" or "->>"
	Key     string // key, or the index with its sign ("+1", "-2")
	IsIndex bool
}

// field is a column reference with an optional JSON path.
type field struct {
	Name string
	Path []jsonOp
}

// selectItem is one entry of ?select=.
type selectItem struct {
	Field field // Field.Name == "*" selects every column
	Alias string
	Cast  string
}

// outputName is the JSON key the item produces (explicit alias, else the
// last JSON key of a path, else the column name).
func (s selectItem) outputName() string {
	if s.Alias != "" {
		return s.Alias
	}
	if len(s.Field.Path) > 0 {
		last := s.Field.Path[len(s.Field.Path)-1]
		if !last.IsIndex {
			return last.Key
		}
		for i := len(s.Field.Path) - 1; i >= 0; i-- {
			if !s.Field.Path[i].IsIndex {
				return s.Field.Path[i].Key
			}
		}
		return s.Field.Name
	}
	return ""
}

// Operators grouped the way PostgREST's grammar groups them.
var (
	quantOperators = map[string]string{
		"eq": "=", "gte": ">=", "gt": ">", "lte": "<=", "lt": "<",
		"like": "LIKE", "ilike": "ILIKE", "match": "~", "imatch": "~*",
	}
	simpleOperators = map[string]string{
		"neq": "<>", "cs": "@>", "cd": "<@", "ov": "&&", "sl": "<<", "sr": ">>",
		"nxr": "&<", "nxl": "&>", "adj": "-|-",
	}
	ftsOperators = map[string]string{
		"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery", "wfts": "websearch_to_tsquery",
	}
	isValues = map[string]string{
		"null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN",
	}
)

// opExpr is a parsed filter operation such as "not.in.(1,2)".
type opExpr struct {
	Negate  bool
	Op      string   // eq, neq, in, is, isdistinct, fts, ...
	Quant   string   // "any" or "all" for eq(any) etc.
	Value   string   // single value
	List    []string // values of in.(...)
	Lang    string   // fts language, when HasLang
	HasLang bool
}

// filter is "column=op.value".
type filter struct {
	Field field
	Op    opExpr
}

// logicTree is an and/or tree of filters (a leaf when Filter is set).
type logicTree struct {
	Filter   *filter
	Negate   bool
	Or       bool
	Children []logicTree
}

// orderTerm is one entry of ?order=.
type orderTerm struct {
	Field field
	Dir   string // "", "asc", "desc"
	Nulls string // "", "nullsfirst", "nullslast"
}

// rpcArg is a GET /rpc argument (a query parameter without an operator).
type rpcArg struct {
	Name  string
	Value string
}

// queryParams is the parsed query string of one request.
type queryParams struct {
	Select        []selectItem // empty means "*"
	Filters       []filter     // root filters, ANDed
	Logic         []logicTree  // root and=/or= trees, ANDed
	Order         []orderTerm
	RPCArgs       []rpcArg
	Columns       []string
	HasColumns    bool
	OnConflict    []string
	HasOnConflict bool
	Range         nonnegRange // from limit/offset
	HasRange      bool
	FilterFields  []string // root filter column names, in order
	Canonical     string
}

var reservedParams = map[string]bool{"select": true, "columns": true, "on_conflict": true}

func lastSegment(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[i+1:]
	}
	return key
}

// parseQueryParams parses every parameter; rpcRead marks GET /rpc, where
// parameters without an operator are function arguments.
func parseQueryParams(params []queryParam, rpcRead bool) (*queryParams, *apiError) {
	q := &queryParams{Canonical: canonicalQuery(params)}
	var embedErr *apiError
	noteEmbed := func(path []string) {
		if len(path) > 0 && embedErr == nil {
			embedErr = errNotEmbedded(path[0])
		}
	}
	seen := map[string]bool{}
	var limitStr, offsetStr *string
	for _, p := range params {
		if reservedParams[p.Key] {
			if seen[p.Key] {
				continue // the first occurrence wins
			}
			seen[p.Key] = true
			if !p.HasValue {
				continue
			}
			switch p.Key {
			case "select":
				items, err := parseSelect(p.Value)
				if err != nil {
					return nil, err
				}
				q.Select = items
			case "columns":
				cols, err := parseColumnList(p.Value, "columns parameter")
				if err != nil {
					return nil, err
				}
				q.Columns, q.HasColumns = cols, true
			case "on_conflict":
				cols, err := parseColumnList(p.Value, "on_conflict parameter")
				if err != nil {
					return nil, err
				}
				q.OnConflict, q.HasOnConflict = cols, true
			}
			continue
		}
		if !p.HasValue {
			continue
		}
		switch last := lastSegment(p.Key); {
		case last == "and" || last == "or":
			path, tree, err := parseLogicParam(p.Key, p.Value)
			if err != nil {
				return nil, err
			}
			noteEmbed(path)
			q.Logic = append(q.Logic, tree)
		case last == "order":
			path, err := parseTreePathPrefix(p.Key)
			if err != nil {
				return nil, err
			}
			noteEmbed(path)
			terms, perr := parseOrder(p.Value)
			if perr != nil {
				return nil, perr
			}
			if q.Order == nil && len(path) == 0 {
				q.Order = terms
			}
		case last == "limit" || last == "offset":
			path, err := parseTreePathPrefix(p.Key)
			if err != nil {
				return nil, err
			}
			noteEmbed(path)
			v := p.Value
			if last == "limit" {
				limitStr = &v
			} else {
				offsetStr = &v
			}
		default:
			path, fld, err := parseTreePath(p.Key)
			if err != nil {
				return nil, err
			}
			op, operr := parseFilterValue(p.Value)
			if operr != nil {
				if rpcRead {
					q.RPCArgs = append(q.RPCArgs, rpcArg{Name: p.Key, Value: p.Value})
					continue
				}
				return nil, operr
			}
			noteEmbed(path)
			q.Filters = append(q.Filters, filter{Field: fld, Op: op})
			q.FilterFields = append(q.FilterFields, fld.Name)
		}
	}
	if embedErr != nil {
		return nil, embedErr
	}
	q.Range, q.HasRange = limitOffsetRange(limitStr, offsetStr)
	return q, nil
}

// ---------------------------------------------------------------------------
// A small recursive-descent scanner with parsec-like error reporting.

type scanner struct {
	src string
	pos int
}

type scanError struct {
	pos       int
	expecting []string
}

func (s *scanner) fail(expecting ...string) *scanError {
	return &scanError{pos: s.pos, expecting: expecting}
}

// qpError turns a scan error into PostgREST's PGRST100 body.
func (s *scanner) qpError(what string, e *scanError) *apiError {
	col := len([]rune(s.src[:min(e.pos, len(s.src))])) + 1
	msg := fmt.Sprintf("%s (line 1, column %d)", strconv.Quote(fmt.Sprintf("failed to parse %s (%s)", what, s.src)), col)
	unexpected := "end of input"
	if e.pos < len(s.src) {
		r := []rune(s.src[e.pos:])[0]
		unexpected = strconv.Quote(string(r))
	}
	details := "unexpected " + unexpected
	if len(e.expecting) > 0 {
		exp := e.expecting
		if len(exp) == 1 {
			details += " expecting " + exp[0]
		} else {
			details += " expecting " + strings.Join(exp[:len(exp)-1], ", ") + " or " + exp[len(exp)-1]
		}
	}
	return errParse(msg, details)
}

func (s *scanner) eof() bool { return s.pos >= len(s.src) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *scanner) peekRune() rune {
	if s.eof() {
		return 0
	}
	return []rune(s.src[s.pos:])[0]
}

func (s *scanner) has(prefix string) bool { return strings.HasPrefix(s.src[s.pos:], prefix) }

func (s *scanner) accept(prefix string) bool {
	if s.has(prefix) {
		s.pos += len(prefix)
		return true
	}
	return false
}

func (s *scanner) skipWS() {
	for !s.eof() && (s.src[s.pos] == ' ' || s.src[s.pos] == '\t') {
		s.pos++
	}
}

func isIdentRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == ' ' || r == '$'
}

// quoted parses "..." with backslash escapes.
func (s *scanner) quoted() (string, *scanError) {
	if !s.accept(`"`) {
		return "", s.fail(`"\""`)
	}
	var b strings.Builder
	for {
		if s.eof() {
			return "", s.fail(`"\""`)
		}
		c := s.src[s.pos]
		switch c {
		case '"':
			s.pos++
			return b.String(), nil
		case '\\':
			if s.pos+1 >= len(s.src) {
				s.pos++
				return "", s.fail("any character")
			}
			_, size := decodeRune(s.src[s.pos+1:])
			b.WriteString(s.src[s.pos+1 : s.pos+1+size])
			s.pos += 1 + size
		default:
			_, size := decodeRune(s.src[s.pos:])
			b.WriteString(s.src[s.pos : s.pos+size])
			s.pos += size
		}
	}
}

func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

// runs consumes runes while ok and returns them.
func (s *scanner) runs(ok func(rune) bool) string {
	start := s.pos
	for !s.eof() {
		r, size := decodeRune(s.src[s.pos:])
		if !ok(r) {
			break
		}
		s.pos += size
	}
	return s.src[start:s.pos]
}

// dashSeparated parses piece ('-' not followed by '>' piece)*, each piece
// trimmed, joined with '-' (PostgREST's sepByDash).
func (s *scanner) dashSeparated(piece func(rune) bool, what string) (string, *scanError) {
	var parts []string
	for {
		p := s.runs(piece)
		if p == "" {
			return "", s.fail(what)
		}
		parts = append(parts, strings.TrimSpace(p))
		if s.has("-") && !s.has("->") {
			s.pos++
			continue
		}
		return strings.Join(parts, "-"), nil
	}
}

const fieldNameExpect = "field name (* or [a..z0..9_$])"

// fieldName parses a quoted or bare column name.
func (s *scanner) fieldName() (string, *scanError) {
	if s.peek() == '"' {
		return s.quoted()
	}
	return s.dashSeparated(isIdentRune, fieldNameExpect)
}

func isJSONKeyRune(r rune) bool { return !strings.ContainsRune("(-:.,>)", r) }

// jsonPath parses (->|->>)(index|key)*.
func (s *scanner) jsonPath() ([]jsonOp, *scanError) {
	var ops []jsonOp
	for {
		var arrow string
		switch {
		case s.accept("->>"):
			arrow = "->>"
		case s.accept("->"):
			arrow = "->"
		default:
			return ops, nil
		}
		start := s.pos
		// An index is digits (optionally negative) followed by a delimiter.
		sign := "+"
		if s.accept("-") {
			sign = "-"
		}
		digits := s.runs(func(r rune) bool { return r >= '0' && r <= '9' })
		if digits != "" && (s.eof() || s.has("->") || s.has("::") || s.has(".") || s.has(",")) {
			ops = append(ops, jsonOp{Arrow: arrow, Key: sign + digits, IsIndex: true})
			continue
		}
		s.pos = start
		var key string
		var err *scanError
		if s.peek() == '"' {
			key, err = s.quoted()
		} else {
			key, err = s.dashSeparated(isJSONKeyRune, "any non reserved character different from: .,>()")
		}
		if err != nil {
			return nil, err
		}
		ops = append(ops, jsonOp{Arrow: arrow, Key: key})
	}
}

// fld parses a lexeme field: name plus JSON path, surrounded by blanks.
func (s *scanner) fld() (field, *scanError) {
	s.skipWS()
	name, err := s.fieldName()
	if err != nil {
		return field{}, err
	}
	path, err := s.jsonPath()
	if err != nil {
		return field{}, err
	}
	s.skipWS()
	return field{Name: name, Path: path}, nil
}

// ---------------------------------------------------------------------------
// Keys.

// parseTreePath parses a filter key: embed path, column and JSON path.
func parseTreePath(key string) ([]string, field, *apiError) {
	s := &scanner{src: key}
	var names []string
	for {
		n, err := s.fieldName()
		if err != nil {
			return nil, field{}, s.qpError("tree path", err)
		}
		names = append(names, n)
		if !s.accept(".") {
			break
		}
	}
	path, err := s.jsonPath()
	if err != nil {
		return nil, field{}, s.qpError("tree path", err)
	}
	return names[:len(names)-1], field{Name: names[len(names)-1], Path: path}, nil
}

// parseTreePathPrefix returns the embed path of keys like "rel.order".
func parseTreePathPrefix(key string) ([]string, *apiError) {
	path, _, err := parseTreePath(key)
	return path, err
}

// parseColumnList parses "a,b" or `"a","b"` (columns and on_conflict).
func parseColumnList(v, what string) ([]string, *apiError) {
	s := &scanner{src: v}
	var cols []string
	for {
		s.skipWS()
		n, err := s.fieldName()
		if err != nil {
			return nil, s.qpError(what, err)
		}
		cols = append(cols, n)
		s.skipWS()
		if !s.accept(",") {
			return cols, nil
		}
	}
}

// ---------------------------------------------------------------------------
// Filters.

// parseFilterValue parses a root filter value such as "not.eq.5".
func parseFilterValue(v string) (opExpr, *apiError) {
	s := &scanner{src: v}
	op, err := s.opExpr(false)
	if err != nil {
		return opExpr{}, s.qpError("filter", err)
	}
	return op, nil
}

const operatorExpect = "operator (eq, gt, ...)"

// opExpr parses [not.]operator.value; inLogic selects the value grammar of
// and=/or= trees, where ',' and ')' end a value unless it is quoted.
func (s *scanner) opExpr(inLogic bool) (opExpr, *scanError) {
	var e opExpr
	if s.has("not.") {
		s.pos += len("not.")
		e.Negate = true
	}
	start := s.pos
	name := s.runs(func(r rune) bool { return r >= 'a' && r <= 'z' })
	expectOp := []string{operatorExpect}
	if !e.Negate {
		expectOp = []string{`"not"`, operatorExpect}
	}
	fail := func() (opExpr, *scanError) {
		s.pos = start
		return opExpr{}, s.fail(expectOp...)
	}
	value := func() (string, *scanError) {
		if !s.accept(".") {
			return "", s.fail("delimiter (.)")
		}
		if inLogic {
			return s.logicValue()
		}
		v := s.src[s.pos:]
		s.pos = len(s.src)
		return v, nil
	}
	e.Op = name
	var err *scanError
	switch {
	case name == "in":
		if !s.accept(".") {
			return fail()
		}
		e.List, err = s.listValue()
	case name == "is":
		if !s.accept(".") {
			return fail()
		}
		at := s.pos
		word := strings.ToLower(s.runs(func(r rune) bool { return unicode.IsLetter(r) || r == '_' }))
		if _, ok := isValues[word]; !ok {
			s.pos = at
			return opExpr{}, s.fail("isVal: (null, not_null, true, false, unknown)")
		}
		e.Value = word
	case name == "isdistinct":
		e.Value, err = value()
	case ftsOperators[name] != "":
		if s.accept("(") {
			lang := s.runs(func(r rune) bool { return isIdentRune(r) && r != '$' })
			if lang == "" || !s.accept(")") {
				return opExpr{}, s.fail(`")"`)
			}
			e.Lang, e.HasLang = strings.TrimSpace(lang), true
		}
		e.Value, err = value()
	case simpleOperators[name] != "":
		e.Value, err = value()
	case quantOperators[name] != "":
		switch {
		case s.accept("(any)"):
			e.Quant = "any"
		case s.accept("(all)"):
			e.Quant = "all"
		}
		e.Value, err = value()
	default:
		return fail()
	}
	if err != nil {
		return opExpr{}, err
	}
	return e, nil
}

// listValue parses "(a, "b,c", d)".
func (s *scanner) listValue() ([]string, *scanError) {
	s.skipWS()
	if !s.accept("(") {
		return nil, s.fail(`"("`)
	}
	s.skipWS()
	var vals []string
	for {
		v, err := s.listElement()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		if !s.accept(",") {
			break
		}
	}
	s.skipWS()
	if !s.accept(")") {
		return nil, s.fail(`","`, `")"`)
	}
	s.skipWS()
	return vals, nil
}

// listElement is a quoted value directly followed by ',' or ')', or any run
// of characters other than ',' and ')'.
func (s *scanner) listElement() (string, *scanError) {
	if s.peek() == '"' {
		save := s.pos
		v, err := s.quoted()
		if err == nil && (s.eof() || s.peek() == ',' || s.peek() == ')') {
			return v, nil
		}
		s.pos = save
	}
	return s.runs(func(r rune) bool { return r != ',' && r != ')' }), nil
}

// logicValue is a value inside and=/or=: quoted, a {pg,array}, or a run of
// characters other than ',' and ')'.
func (s *scanner) logicValue() (string, *scanError) {
	if s.peek() == '"' {
		save := s.pos
		v, err := s.quoted()
		if err == nil && (s.eof() || s.peek() == ',' || s.peek() == ')') {
			return v, nil
		}
		s.pos = save
	}
	if s.peek() == '{' {
		save := s.pos
		s.pos++
		s.runs(func(r rune) bool { return r != '{' && r != '}' })
		if s.accept("}") {
			return s.src[save:s.pos], nil
		}
		s.pos = save
	}
	return s.runs(func(r rune) bool { return r != ',' && r != ')' }), nil
}

// parseLogicParam parses "[path.][not.]or" = "(tree,...)".
func parseLogicParam(key, value string) ([]string, logicTree, *apiError) {
	ks := &scanner{src: key}
	var names []string
	for {
		n, err := ks.fieldName()
		if err != nil {
			return nil, logicTree{}, ks.qpError("logic path", err)
		}
		names = append(names, n)
		if !ks.accept(".") {
			break
		}
	}
	op := names[len(names)-1]
	negate := false
	var path []string
	for _, n := range names[:len(names)-1] {
		if n == "not" {
			negate = true
			continue
		}
		path = append(path, n)
	}
	src := op + value
	if negate {
		src = "not." + src
	}
	s := &scanner{src: src}
	tree, err := s.logicTree()
	if err != nil {
		return nil, logicTree{}, s.qpError("logic tree", err)
	}
	return path, tree, nil
}

// logicTree parses a filter leaf "col.op.val" or "[not.](and|or)(tree,...)".
func (s *scanner) logicTree() (logicTree, *scanError) {
	save := s.pos
	if f, err := s.logicFilter(); err == nil {
		return logicTree{Filter: &f}, nil
	}
	s.pos = save
	var t logicTree
	if s.accept("not.") {
		t.Negate = true
	}
	switch {
	case s.accept("and"):
	case s.accept("or"):
		t.Or = true
	default:
		if t.Negate {
			return t, s.fail("logic operator (and, or)")
		}
		return t, s.fail(fieldNameExpect, "negation operator (not)", "logic operator (and, or)")
	}
	s.skipWS()
	if !s.accept("(") {
		return t, s.fail(`"("`)
	}
	s.skipWS()
	for {
		child, err := s.logicTree()
		if err != nil {
			return t, err
		}
		t.Children = append(t.Children, child)
		s.skipWS()
		if !s.accept(",") {
			break
		}
		s.skipWS()
	}
	if !s.accept(")") {
		return t, s.fail(`","`, `")"`)
	}
	s.skipWS()
	return t, nil
}

func (s *scanner) logicFilter() (filter, *scanError) {
	f, err := s.fld()
	if err != nil {
		return filter{}, err
	}
	if !s.accept(".") {
		return filter{}, s.fail("delimiter (.)")
	}
	op, err := s.opExpr(true)
	if err != nil {
		return filter{}, err
	}
	return filter{Field: f, Op: op}, nil
}

// ---------------------------------------------------------------------------
// select= and order=.

// parseSelect parses the select parameter. Resource embedding, spreads and
// aggregates are recognised and refused with PostgREST-shaped errors.
func parseSelect(v string) ([]selectItem, *apiError) {
	s := &scanner{src: v}
	var items []selectItem
	s.skipWS()
	if s.eof() {
		return nil, nil
	}
	for {
		item, aerr, err := s.selectItem()
		if aerr != nil {
			return nil, aerr
		}
		if err != nil {
			return nil, s.qpError("select parameter", err)
		}
		items = append(items, item)
		s.skipWS()
		if !s.accept(",") {
			break
		}
	}
	return items, nil
}

func (s *scanner) atItemEnd() bool {
	return s.eof() || s.peek() == ',' || s.peek() == ')'
}

func (s *scanner) selectItem() (selectItem, *apiError, *scanError) {
	s.skipWS()
	if s.has("...") {
		return selectItem{}, errNotImplemented("spread relations ('...') are not supported by this PostgREST stand-in"), nil
	}
	start := s.pos
	// An embedded resource: [alias:]name[!hint][!inner](...)
	if rel, ok := s.tryRelation(); ok {
		return selectItem{}, errNotImplemented("resource embedding ('" + rel + "(...)') is not supported by this PostgREST stand-in"), nil
	}
	s.pos = start
	if s.accept("*") {
		s.skipWS()
		if s.atItemEnd() {
			return selectItem{Field: field{Name: "*"}}, nil, nil
		}
		return selectItem{}, nil, s.fail(`")"`, `","`, "end of input")
	}
	var item selectItem
	if alias, ok := s.tryAlias(); ok {
		item.Alias = alias
	}
	if s.has("count()") {
		return selectItem{}, errAggregatesNotAllowed(), nil
	}
	name, err := s.fieldName()
	if err != nil {
		return selectItem{}, nil, err
	}
	path, err := s.jsonPath()
	if err != nil {
		return selectItem{}, nil, err
	}
	item.Field = field{Name: name, Path: path}
	if s.accept("::") {
		cast := s.runs(func(r rune) bool { return isIdentRune(r) && r != '$' })
		if strings.TrimSpace(cast) == "" {
			return selectItem{}, nil, s.fail("letter or digit")
		}
		item.Cast = strings.TrimSpace(cast)
	}
	for _, agg := range []string{"sum", "avg", "count", "max", "min"} {
		if s.has("." + agg + "()") {
			return selectItem{}, errAggregatesNotAllowed(), nil
		}
	}
	s.skipWS()
	if !s.atItemEnd() {
		return selectItem{}, nil, s.fail(`"->"`, `"::"`, `","`, "end of input")
	}
	return item, nil, nil
}

// tryAlias parses "alias:" (not "::").
func (s *scanner) tryAlias() (string, bool) {
	save := s.pos
	name, err := s.fieldName()
	if err == nil && s.has(":") && !s.has("::") {
		s.pos++
		s.skipWS()
		return name, true
	}
	s.pos = save
	return "", false
}

// tryRelation reports whether the scanner is at an embedded resource.
func (s *scanner) tryRelation() (string, bool) {
	s.tryAlias()
	name, err := s.fieldName()
	if err != nil || name == "count" {
		return "", false
	}
	for i := 0; i < 2 && s.accept("!"); i++ {
		if _, err := s.fieldName(); err != nil {
			return "", false
		}
	}
	return name, s.has("(")
}

// parseOrder parses "col[.asc|.desc][.nullsfirst|.nullslast],...".
func parseOrder(v string) ([]orderTerm, *apiError) {
	s := &scanner{src: v}
	var terms []orderTerm
	for {
		s.skipWS()
		save := s.pos
		if name, err := s.fieldName(); err == nil && s.has("(") {
			return nil, errNotImplemented("ordering by the embedded resource '" + name + "' is not supported by this PostgREST stand-in")
		}
		s.pos = save
		f, err := s.fld()
		if err != nil {
			return nil, s.qpError("order", err)
		}
		t := orderTerm{Field: f}
		switch {
		case s.accept(".asc"):
			t.Dir = "asc"
		case s.accept(".desc"):
			t.Dir = "desc"
		}
		switch {
		case s.accept(".nullsfirst"):
			t.Nulls = "nullsfirst"
		case s.accept(".nullslast"):
			t.Nulls = "nullslast"
		}
		s.skipWS()
		if !s.eof() && s.peek() != ',' {
			if s.peek() == '.' {
				s.pos++
				if t.Dir == "" && t.Nulls == "" {
					return nil, s.qpError("order", s.fail(`"asc"`, `"desc"`, `"nullsfirst"`, `"nullslast"`))
				}
				return nil, s.qpError("order", s.fail(`"nullsfirst"`, `"nullslast"`))
			}
			return nil, s.qpError("order", s.fail(`","`, "end of input"))
		}
		terms = append(terms, t)
		if !s.accept(",") {
			return terms, nil
		}
	}
}

// ---------------------------------------------------------------------------
// Ranges (PostgREST.RangeQuery over Data.Ranged semantics).

// nonnegRange is an integer range [lower, upper]; lowerAll/upperAll mark an
// unbounded side and empty the canonical empty range.
type nonnegRange struct {
	empty    bool
	lowerAll bool
	lower    int64
	upperAll bool
	upper    int64
}

var (
	allRange       = nonnegRange{lower: 0, upperAll: true}
	limitZeroRange = nonnegRange{lower: 0, upper: -1}
)

func rangeGeq(n int64) nonnegRange { return nonnegRange{lower: n, upperAll: true} }
func rangeLeq(n int64) nonnegRange { return nonnegRange{lowerAll: true, upper: n} }

func (r nonnegRange) isEmpty() bool {
	return r.empty || (!r.lowerAll && !r.upperAll && r.lower > r.upper)
}

func (r nonnegRange) isAll() bool {
	return !r.isEmpty() && !r.lowerAll && r.lower == 0 && r.upperAll
}

func intersect(a, b nonnegRange) nonnegRange {
	if a.isEmpty() || b.isEmpty() {
		return nonnegRange{empty: true}
	}
	out := a
	switch {
	case a.lowerAll:
		out.lowerAll, out.lower = b.lowerAll, b.lower
	case !b.lowerAll && b.lower > a.lower:
		out.lower = b.lower
	}
	switch {
	case a.upperAll:
		out.upperAll, out.upper = b.upperAll, b.upper
	case !b.upperAll && b.upper < a.upper:
		out.upper = b.upper
	}
	return out
}

// offset is the range's lower bound.
func (r nonnegRange) offset() int64 {
	if r.empty || r.lowerAll {
		return 0
	}
	return r.lower
}

// limit is the number of rows the range spans, when bounded.
func (r nonnegRange) limit() (int64, bool) {
	if r.empty || r.lowerAll || r.upperAll {
		return 0, false
	}
	return 1 + r.upper - r.lower, true
}

func (r nonnegRange) hasLimitZero() bool {
	return !r.empty && !r.upperAll && r.upper == -1
}

func restrictRange(limit int64, r nonnegRange) nonnegRange {
	return intersect(r, rangeLeq(addSat(r.offset(), limit-1)))
}

// addSat adds without wrapping around (PostgREST computes with unbounded
// integers).
func addSat(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}

func readInteger(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n, err == nil
}

// limitOffsetRange combines ?limit and ?offset like PostgREST's qsRanges.
func limitOffsetRange(limitStr, offsetStr *string) (nonnegRange, bool) {
	var limitR, offsetR nonnegRange
	if limitStr != nil {
		limitR = allRange
		if n, ok := readInteger(*limitStr); ok {
			limitR = restrictRange(n, allRange)
		}
	}
	if offsetStr != nil {
		offsetR = allRange
		if n, ok := readInteger(*offsetStr); ok {
			offsetR = rangeGeq(n)
		}
	}
	switch {
	case limitStr != nil && offsetStr != nil:
		l, _ := limitR.limit()
		o := offsetR.offset()
		return nonnegRange{lower: o, upper: addSat(o, l-1)}, true
	case limitStr != nil:
		return limitR, true
	case offsetStr != nil:
		return offsetR, true
	}
	return allRange, false
}

// parseRangeHeader parses "Range: 0-9" / "10-" (^([0-9]+)-([0-9]*)$);
// anything else means all rows.
func parseRangeHeader(h string) nonnegRange {
	lo, hi, ok := strings.Cut(h, "-")
	if !ok || lo == "" || !allDigits(lo) || !allDigits(hi) {
		return allRange
	}
	lower := nonnegRange{empty: true}
	if n, err := strconv.ParseInt(lo, 10, 64); err == nil {
		lower = rangeGeq(n)
	}
	upper := allRange
	if n, err := strconv.ParseInt(hi, 10, 64); err == nil {
		upper = rangeLeq(n)
	}
	return intersect(lower, upper)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// topLevelRange combines the Range header (GET only) with limit/offset and
// validates the result (PostgREST.ApiRequest.getRanges).
func topLevelRange(method, rangeHeader string, q *queryParams) (nonnegRange, *apiError) {
	headerRange := allRange
	if method == "GET" && rangeHeader != "" {
		headerRange = parseRangeHeader(rangeHeader)
	}
	limitRange := allRange
	if q.HasRange {
		limitRange = q.Range
	}
	top := intersect(headerRange, limitRange)
	if limitRange.hasLimitZero() {
		top = limitZeroRange
	}
	if top.isEmpty() && !limitRange.hasLimitZero() {
		if headerRange.isEmpty() {
			return top, errRange(rangeLowerGTUpper)
		}
		return top, errRange(rangeNegativeLimit)
	}
	if method == "PUT" && !top.isAll() {
		return top, errPutLimit()
	}
	return top, nil
}

// ---------------------------------------------------------------------------
// Prefer (RFC 7240 as PostgREST reads it).

// preferences are the recognised Prefer values; for each the first
// occurrence across all Prefer headers wins.
type preferences struct {
	Resolution  string // merge-duplicates | ignore-duplicates
	Return      string // representation | minimal | headers-only
	Count       string // exact | planned | estimated
	Tx          string // commit | rollback (accepted, never applied)
	Missing     string // default | null
	Handling    string // strict | lenient
	MaxAffected int64
	HasMaxAff   bool
	Invalid     []string
}

var preferenceValues = map[string][2]string{
	"resolution=merge-duplicates":  {"resolution", "merge-duplicates"},
	"resolution=ignore-duplicates": {"resolution", "ignore-duplicates"},
	"return=representation":        {"return", "representation"},
	"return=minimal":               {"return", "minimal"},
	"return=headers-only":          {"return", "headers-only"},
	"count=exact":                  {"count", "exact"},
	"count=planned":                {"count", "planned"},
	"count=estimated":              {"count", "estimated"},
	"tx=commit":                    {"tx", "commit"},
	"tx=rollback":                  {"tx", "rollback"},
	"missing=default":              {"missing", "default"},
	"missing=null":                 {"missing", "null"},
	"handling=strict":              {"handling", "strict"},
	"handling=lenient":             {"handling", "lenient"},
}

// parsePreferences reads every Prefer header value.
func parsePreferences(headers []string) preferences {
	var p preferences
	for _, h := range headers {
		for _, raw := range strings.Split(h, ",") {
			v := strings.TrimSpace(raw)
			if v == "" {
				continue
			}
			if kv, ok := preferenceValues[v]; ok {
				dst := map[string]*string{
					"resolution": &p.Resolution, "return": &p.Return, "count": &p.Count,
					"tx": &p.Tx, "missing": &p.Missing, "handling": &p.Handling,
				}[kv[0]]
				if *dst == "" {
					*dst = kv[1]
				}
				continue
			}
			if n, ok := strings.CutPrefix(v, "max-affected="); ok {
				if m, err := strconv.ParseInt(n, 10, 64); err == nil {
					if !p.HasMaxAff {
						p.MaxAffected, p.HasMaxAff = m, true
					}
					continue
				}
			}
			p.Invalid = append(p.Invalid, v)
		}
	}
	return p
}

// prefKind selects which preferences a response reports as applied.
type prefKind int

const (
	prefRead prefKind = iota
	prefInsert
	prefUpdate
	prefDelete
	prefUpsertPut
	prefCall
)

// applied renders Preference-Applied for a response of the given kind.
// resolutionApplies is false for inserts into tables without a primary key
// and without on_conflict.
func (p preferences) applied(kind prefKind, resolutionApplies bool) string {
	var vals []string
	add := func(k, v string) {
		if v != "" {
			vals = append(vals, k+"="+v)
		}
	}
	if kind == prefInsert && resolutionApplies {
		add("resolution", p.Resolution)
	}
	if kind == prefInsert || kind == prefUpdate {
		add("missing", p.Missing)
	}
	if kind == prefInsert || kind == prefUpdate || kind == prefDelete || kind == prefUpsertPut {
		add("return", p.Return)
	}
	add("count", p.Count)
	add("handling", p.Handling)
	if p.Handling == "strict" && p.HasMaxAff && (kind == prefUpdate || kind == prefDelete || kind == prefCall) {
		vals = append(vals, "max-affected="+strconv.FormatInt(p.MaxAffected, 10))
	}
	return strings.Join(vals, ", ")
}

// ---------------------------------------------------------------------------
// Media types.

// mediaKind is the response format chosen by content negotiation.
type mediaKind int

const (
	mediaJSON mediaKind = iota
	mediaObject
)

// mediaType is one negotiated output format.
type mediaType struct {
	Kind  mediaKind
	Strip bool // nulls=stripped
}

// contentType is the Content-Type PostgREST sends for the format.
func (m mediaType) contentType() string {
	switch {
	case m.Kind == mediaObject && m.Strip:
		return "application/vnd.pgrst.object+json;nulls=stripped; charset=utf-8"
	case m.Kind == mediaObject:
		return "application/vnd.pgrst.object+json; charset=utf-8"
	case m.Strip:
		return "application/vnd.pgrst.array+json;nulls=stripped; charset=utf-8"
	}
	return "application/json; charset=utf-8"
}

type acceptEntry struct {
	mime   string // normalised type/subtype
	params map[string]string
	q      float64
	raw    string
}

func parseMediaType(s string) (string, map[string]string) {
	parts := strings.Split(s, ";")
	mime := strings.ToLower(strings.TrimSpace(parts[0]))
	params := map[string]string{}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return mime, params
}

// negotiate picks the response format from an Accept header.
func negotiate(accept string) (mediaType, *apiError) {
	if strings.TrimSpace(accept) == "" {
		return mediaType{Kind: mediaJSON}, nil
	}
	var entries []acceptEntry
	for _, raw := range strings.Split(accept, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		mime, params := parseMediaType(raw)
		q := 1.0
		if qs, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(qs, 64); err == nil {
				q = f
			}
			delete(params, "q")
		}
		entries = append(entries, acceptEntry{mime: mime, params: params, q: q, raw: mime})
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].q > entries[j].q })
	var names []string
	for _, e := range entries {
		if e.q <= 0 {
			continue
		}
		strip := e.params["nulls"] == "stripped"
		switch e.mime {
		case "application/json", "*/*":
			return mediaType{Kind: mediaJSON}, nil
		case "application/vnd.pgrst.array+json", "application/vnd.pgrst.array":
			return mediaType{Kind: mediaJSON, Strip: strip}, nil
		case "application/vnd.pgrst.object+json", "application/vnd.pgrst.object":
			return mediaType{Kind: mediaObject, Strip: strip}, nil
		}
		name := e.mime
		if strip {
			name += ";nulls=stripped"
		}
		names = append(names, name)
	}
	return mediaType{}, errMediaType(names)
}
