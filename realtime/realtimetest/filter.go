package realtimetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// binding is one postgres_changes entry of a channel's join payload, parsed
// the way Realtime's Subscriptions.parse_subscription_params/1 does it.
type binding struct {
	// ID is the number the join reply assigns; the same params always get the
	// same id (Realtime uses :erlang.phash2/1 of the raw map).
	ID int64
	// Raw is the entry exactly as the client sent it.
	Raw json.RawMessage
	// Event is the action filter: "*", "INSERT", "UPDATE" or "DELETE".
	Event string
	// Schema and Table name the subscribed relation; "*" matches any.
	Schema, Table string
	// Filters are ANDed; empty means every row.
	Filters []rowFilter
	// Select lists the columns to deliver (plus primary key columns); nil
	// means all columns.
	Select []string
	// ParseError is set when the params are malformed; the channel then gets
	// a postgres_changes system error instead of "Subscribed to PostgreSQL".
	ParseError string
}

// rowFilter is one `<column>=[not.]<op>.<value>` expression.
type rowFilter struct {
	Column string
	Op     string // eq, neq, lt, lte, gt, gte, in
	Value  string // for "in": a Postgres array literal "{a,b}"
	Negate bool
}

// supportedOps are the filter operators the stand-in evaluates: the
// long-standing set every Realtime version accepts.
var supportedOps = map[string]bool{"eq": true, "neq": true, "lt": true, "lte": true, "gt": true, "gte": true, "in": true}

// bindingID derives a deterministic id in [0, 2^27) from the raw params,
// independent of key order.
func bindingID(raw json.RawMessage) int64 {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		v = string(raw)
	}
	canon, err := json.Marshal(v) // map keys come out sorted
	if err != nil {
		canon = raw
	}
	h := fnv.New64a()
	_, _ = h.Write(canon)
	return int64(h.Sum64() & (1<<27 - 1))
}

// parseBinding parses one postgres_changes entry. raw must be a JSON object.
func parseBinding(raw json.RawMessage) binding {
	b := binding{Raw: raw, ID: bindingID(raw), Event: "*"}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(raw, &params); err != nil {
		b.ParseError = noParamsMessage(raw)
		return b
	}
	b.Event = actionFilter(params)

	if sel, ok := params["select"]; ok {
		var list []any
		var str string
		switch {
		case json.Unmarshal(sel, &list) == nil && list != nil:
			for _, e := range list {
				if s, ok := e.(string); ok {
					b.Select = append(b.Select, s)
				}
			}
		case json.Unmarshal(sel, &str) == nil:
			b.ParseError = "Error parsing `select` params: expected a list of column name strings, e.g. select: [\"col1\", \"col2\"]"
			return b
		}
	}

	schema, hasSchema, schemaIsStr := stringParam(params, "schema")
	table, hasTable, tableIsStr := stringParam(params, "table")
	filter, hasFilter, filterIsStr := stringParam(params, "filter")
	_, hasUserToken := params["user_token"]
	_, hasAuthToken := params["auth_token"]

	switch {
	case schemaIsStr && tableIsStr && filterIsStr:
		filters, err := parseFilters(filter)
		if err != "" {
			b.ParseError = "Error parsing `filter` params: " + err
			return b
		}
		b.Schema, b.Table, b.Filters = schema, table, filters
	case schemaIsStr && tableIsStr && !hasFilter:
		b.Schema, b.Table = schema, table
	case schemaIsStr && !hasTable && !hasFilter:
		b.Schema, b.Table = schema, "*"
	case tableIsStr && !hasSchema && !hasFilter:
		b.Schema, b.Table = "public", table
	case hasUserToken || hasAuthToken:
		b.ParseError = "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: <redacted>"
		return b
	default:
		b.ParseError = noParamsMessage(raw)
		return b
	}
	if b.Select != nil && (b.Schema == "*" || b.Table == "*") {
		b.ParseError = "Column selection is not supported for wildcard subscriptions. Provide an explicit schema and table name."
	}
	return b
}

func noParamsMessage(raw json.RawMessage) string {
	return "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: " + inspectJSON(raw)
}

// stringParam reports whether key is present and whether its value is a string.
func stringParam(params map[string]json.RawMessage, key string) (val string, present, isString bool) {
	raw, ok := params[key]
	if !ok {
		return "", false, false
	}
	if err := json.Unmarshal(raw, &val); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", true, false
	}
	return val, true, true
}

func actionFilter(params map[string]json.RawMessage) string {
	var ev string
	if raw, ok := params["event"]; !ok || json.Unmarshal(raw, &ev) != nil {
		return "*"
	}
	switch up := strings.ToUpper(ev); up {
	case "INSERT", "UPDATE", "DELETE":
		return up
	default:
		return "*"
	}
}

// parseFilters parses a filter string: comma-separated (outside parentheses
// and quotes) `<column>=[not.]<op>.<value>` expressions. It returns the
// reason text Realtime puts after "Error parsing `filter` params: ".
func parseFilters(s string) ([]rowFilter, string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, ""
	}
	var out []rowFilter
	for _, seg := range splitTopLevel(s) {
		f, err := parseFilterSegment(seg)
		if err != "" {
			return nil, err
		}
		out = append(out, f)
	}
	return out, ""
}

func parseFilterSegment(seg string) (rowFilter, string) {
	seg = strings.TrimSpace(seg)
	if seg == "" {
		return rowFilter{}, "filter must not contain empty segments (check for extra commas)"
	}
	col, rest, ok := strings.Cut(seg, "=")
	if !ok {
		return rowFilter{}, inspectStrings(seg)
	}
	negate := false
	if r, ok := strings.CutPrefix(rest, "not."); ok {
		negate, rest = true, r
	}
	op, value, ok := strings.Cut(rest, ".")
	if !ok {
		return rowFilter{}, inspectStrings(rest)
	}
	if !supportedOps[op] {
		return rowFilter{}, inspectStrings(op, value)
	}
	if op == "in" {
		if len(value) < 2 || value[0] != '(' || value[len(value)-1] != ')' {
			return rowFilter{}, "`in` filter value must be wrapped by parentheses"
		}
		value = "{" + value[1:len(value)-1] + "}"
	} else {
		value = unquoteFilterValue(value)
	}
	return rowFilter{Column: col, Op: op, Value: value, Negate: negate}, ""
}

// splitTopLevel splits on commas that are neither inside parentheses nor
// inside a double-quoted value.
func splitTopLevel(s string) []string {
	var out []string
	var cur strings.Builder
	depth, quoted := 0, false
	var prev byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\' && i+1 < len(s):
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
			c = s[i]
		case quoted && c == '"':
			quoted = false
			cur.WriteByte(c)
		case quoted:
			cur.WriteByte(c)
		case c == '"' && (prev == '.' || prev == '(' || prev == ','):
			quoted = true
			cur.WriteByte(c)
		case c == '(':
			depth++
			cur.WriteByte(c)
		case c == ')':
			depth = max(0, depth-1)
			cur.WriteByte(c)
		case c == ',' && depth == 0:
			out = append(out, cur.String())
			cur.Reset()
			c = 0
		default:
			cur.WriteByte(c)
		}
		prev = c
	}
	return append(out, cur.String())
}

// unquoteFilterValue strips one level of double quotes with backslash
// escapes; a value that is not a complete quoted string is kept as-is.
func unquoteFilterValue(v string) string {
	if len(v) < 2 || v[0] != '"' {
		return v
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			if i == len(v)-1 {
				return b.String()
			}
			return v
		case c == '\\' && i+1 < len(v):
			i++
			b.WriteByte(v[i])
		default:
			b.WriteByte(c)
		}
	}
	return v
}

// inspectStrings renders a list of strings like Elixir's inspect/1.
func inspectStrings(ss ...string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = inspectString(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// logParams renders a binding like Subscriptions.params_to_log/1 for the
// "Unable to subscribe ..." messages.
func (b binding) logParams() string {
	filters := make([]string, len(b.Filters))
	for i, f := range b.Filters {
		filters[i] = fmt.Sprintf("{%s, %s, %s, %t}", inspectString(f.Column), inspectString(f.Op), inspectString(f.Value), f.Negate)
	}
	sel := "nil"
	if b.Select != nil {
		sel = inspectStrings(b.Select...)
	}
	return fmt.Sprintf("event: %s, schema: %s, table: %s, filters: [%s], select: %s",
		b.Event, b.Schema, b.Table, strings.Join(filters, ", "), sel)
}

// matchesRelation reports whether the binding subscribes to schema.table.
func (b binding) matchesRelation(schema, table string) bool {
	return (b.Schema == "*" || b.Schema == schema) && (b.Table == "*" || b.Table == table)
}

// matchesEvent applies the binding's action filter.
func (b binding) matchesEvent(typ string) bool {
	return b.Event == "*" || b.Event == typ
}

// cell is one column value as the filter evaluator sees it: the value's
// text form (as Postgres would print it) and its type name.
type cell struct {
	Text   string
	Null   bool
	Type   string // pg_type.typname, e.g. "int4"
	Exists bool
}

// visibleThroughFilters mirrors realtime.is_visible_through_filters: every
// filter's column must exist and every comparison must be true; comparisons
// with NULL are never true.
func visibleThroughFilters(filters []rowFilter, lookup func(column string) cell) bool {
	for _, f := range filters {
		c := lookup(f.Column)
		if !c.Exists || c.Null {
			return false
		}
		res, ok := compareFilter(f, c)
		if !ok {
			return false
		}
		if f.Negate {
			res = !res
		}
		if !res {
			return false
		}
	}
	return true
}

// compareFilter evaluates one filter against a non-null cell. ok is false
// when the filter value cannot be read as the column's type (Realtime refuses
// such subscriptions up front when it can check them).
func compareFilter(f rowFilter, c cell) (result, ok bool) {
	if f.Op == "in" {
		elems, ok := parseArrayLiteral(f.Value)
		if !ok {
			return false, false
		}
		for _, e := range elems {
			if e.Null {
				continue
			}
			cmp, ok := compareTyped(c.Type, c.Text, e.Text)
			if ok && cmp == 0 {
				return true, true
			}
		}
		return false, true
	}
	cmp, ok := compareTyped(c.Type, c.Text, f.Value)
	if !ok {
		return false, false
	}
	switch f.Op {
	case "eq":
		return cmp == 0, true
	case "neq":
		return cmp != 0, true
	case "lt":
		return cmp < 0, true
	case "lte":
		return cmp <= 0, true
	case "gt":
		return cmp > 0, true
	case "gte":
		return cmp >= 0, true
	}
	return false, false
}

// compareTyped compares two text values as values of the Postgres type typ.
// Text types compare byte-wise (the C collation).
func compareTyped(typ, a, b string) (int, bool) {
	switch typ {
	case "int2", "int4", "int8", "oid", "numeric", "float4", "float8", "money":
		x, okA := parseNumber(a)
		y, okB := parseNumber(b)
		if !okA || !okB {
			return 0, false
		}
		return x.Cmp(y), true
	case "bool":
		x, okA := parseBool(a)
		y, okB := parseBool(b)
		if !okA || !okB {
			return 0, false
		}
		switch {
		case x == y:
			return 0, true
		case !x:
			return -1, true
		default:
			return 1, true
		}
	case "timestamptz", "timestamp", "date":
		x, okA := parseTime(a)
		y, okB := parseTime(b)
		if !okA || !okB {
			return 0, false
		}
		return x.Compare(y), true
	case "uuid":
		return strings.Compare(normalizeUUID(a), normalizeUUID(b)), true
	default:
		return strings.Compare(a, b), true
	}
}

func parseNumber(s string) (*big.Rat, bool) {
	s = strings.TrimSpace(strings.NewReplacer("$", "", ",", "").Replace(s))
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

// parseBool accepts Postgres boolean literals.
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "t", "true", "y", "yes", "on", "1":
		return true, true
	case "f", "false", "n", "no", "off", "0":
		return false, true
	}
	return false, false
}

var timeLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// parseTime reads ISO-8601 / Postgres ISO DateStyle timestamps; values
// without an offset are taken as UTC.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func normalizeUUID(s string) string {
	return strings.ToLower(strings.NewReplacer("{", "", "}", "", "-", "").Replace(strings.TrimSpace(s)))
}

// arrayElem is one element of a parsed Postgres array literal.
type arrayElem struct {
	Text string
	Null bool
	Sub  []arrayElem // nested dimension, when IsArray
	// IsArray marks a nested array element.
	IsArray bool
}

// parseArrayLiteral parses a Postgres array literal such as
// `{1,2,NULL,"a,b"}` or `{{1,2},{3,4}}` (comma delimiter).
func parseArrayLiteral(s string) ([]arrayElem, bool) {
	s = strings.TrimSpace(s)
	// Optional dimension decoration: [1:2]={...}
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "="); i >= 0 {
			s = s[i+1:]
		}
	}
	p := arrayParser{s: s}
	elems, ok := p.parseArray()
	if !ok || p.i != len(p.s) {
		return nil, false
	}
	return elems, true
}

type arrayParser struct {
	s string
	i int
}

func (p *arrayParser) parseArray() ([]arrayElem, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, false
	}
	p.i++
	out := []arrayElem{}
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return out, true
	}
	for {
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, false
		}
		var e arrayElem
		switch p.s[p.i] {
		case '{':
			sub, ok := p.parseArray()
			if !ok {
				return nil, false
			}
			e = arrayElem{Sub: sub, IsArray: true}
		case '"':
			txt, ok := p.parseQuoted()
			if !ok {
				return nil, false
			}
			e = arrayElem{Text: txt}
		default:
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != '}' {
				p.i++
			}
			txt := strings.TrimSpace(p.s[start:p.i])
			e = arrayElem{Text: txt, Null: strings.EqualFold(txt, "NULL")}
		}
		out = append(out, e)
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return out, true
		default:
			return nil, false
		}
	}
}

func (p *arrayParser) parseQuoted() (string, bool) {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case '\\':
			if p.i+1 >= len(p.s) {
				return "", false
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case '"':
			p.i++
			return b.String(), true
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", false
}

func (p *arrayParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

// cellText converts a JSON value to the text form the filter evaluator
// compares: strings unquoted, other scalars as their JSON text.
func cellText(raw json.RawMessage) (text string, null bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return s, false
		}
	}
	return string(raw), false
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }
