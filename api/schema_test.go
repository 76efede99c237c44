package api_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/meshhook/meshhook-alerts/api"
)

// doc is the parsed OpenAPI document with a JSON Schema checker for the
// subset of JSON Schema it uses: $ref, type (with "null"), enum,
// properties, required, additionalProperties, items, minItems, maxItems,
// minimum, maximum, maxLength, pattern and the uuid and date-time formats.
type doc struct {
	root map[string]any
}

func loadDoc(t testing.TB) *doc {
	t.Helper()
	var root map[string]any
	require.NoError(t, yaml.Unmarshal(api.OpenAPI(), &root))
	return &doc{root: normalize(root).(map[string]any)}
}

// normalize turns YAML's decoded values into JSON's (map keys as strings,
// numbers as float64), so examples compare with decoded responses.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[k] = normalize(v)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[fmt.Sprint(k)] = normalize(v)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = normalize(v)
		}
		return out
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

func (d *doc) paths() map[string]any { return d.root["paths"].(map[string]any) }

// operation returns the operation object of method on path.
func (d *doc) operation(method, path string) (map[string]any, bool) {
	item, ok := d.paths()[path].(map[string]any)
	if !ok {
		return nil, false
	}
	op, ok := item[strings.ToLower(method)].(map[string]any)
	return op, ok
}

// resolve follows a $ref (local only).
func (d *doc) resolve(v any) any {
	for {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		v = d.pointer(ref)
	}
}

func (d *doc) pointer(ref string) any {
	if !strings.HasPrefix(ref, "#/") {
		panic("non-local $ref " + ref)
	}
	var cur any = d.root
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			panic("bad $ref " + ref)
		}
		cur, ok = m[part]
		if !ok {
			panic("dangling $ref " + ref)
		}
	}
	return cur
}

// templateMatch reports whether a request path matches an OpenAPI path
// template.
func templateMatch(tmpl, path string) bool {
	tp, pp := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(tp) != len(pp) {
		return false
	}
	for i := range tp {
		if strings.HasPrefix(tp[i], "{") && strings.HasSuffix(tp[i], "}") {
			if pp[i] == "" {
				return false
			}
			continue
		}
		if tp[i] != pp[i] {
			return false
		}
	}
	return true
}

// findPath returns the document path template matching a request path,
// preferring the one with the fewest parameters.
func (d *doc) findPath(path string) (string, bool) {
	var best string
	bestParams := math.MaxInt
	for tmpl := range d.paths() {
		if templateMatch(tmpl, path) {
			if n := strings.Count(tmpl, "{"); n < bestParams {
				best, bestParams = tmpl, n
			}
		}
	}
	return best, best != ""
}

// responseSchema returns the JSON schema documented for a status of an
// operation; ok is false when the status is not documented. schema is nil
// for a response without a JSON body.
func (d *doc) responseSchema(op map[string]any, status int) (schema any, ok bool) {
	resps := op["responses"].(map[string]any)
	r, ok := resps[strconv.Itoa(status)]
	if !ok {
		return nil, false
	}
	resp := d.resolve(r).(map[string]any)
	content, _ := resp["content"].(map[string]any)
	if content == nil {
		return nil, true
	}
	mt, ok := content["application/json"].(map[string]any)
	if !ok {
		return nil, true
	}
	return mt["schema"], true
}

// checkResponse asserts that a live response is documented: its status is
// listed for the operation and its body validates against the schema.
func (d *doc) checkResponse(t testing.TB, method, path string, status int, header http.Header, body []byte) {
	t.Helper()
	tmpl, ok := d.findPath(path)
	if !ok && status == http.StatusNotFound {
		return // an unknown route
	}
	require.True(t, ok, "%s %s: path not in openapi.yaml", method, path)
	op, ok := d.operation(method, tmpl)
	if !ok && status == http.StatusMethodNotAllowed {
		return // a method the route does not have
	}
	require.True(t, ok, "%s %s: operation not in openapi.yaml", method, tmpl)
	schema, ok := d.responseSchema(op, status)
	require.True(t, ok, "%s %s answered %d, which openapi.yaml does not list", method, tmpl, status)
	if schema == nil {
		if ct := header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") && status != http.StatusNoContent {
			t.Fatalf("%s %s %d: JSON body but no schema documented", method, tmpl, status)
		}
		return
	}
	require.True(t, strings.HasPrefix(header.Get("Content-Type"), "application/json"), "%s %s %d: content type %q", method, tmpl, status, header.Get("Content-Type"))
	var v any
	require.NoError(t, json.Unmarshal(body, &v), "%s %s %d: body is not JSON: %s", method, tmpl, status, body)
	if errs := d.validate(schema, v, "$"); len(errs) > 0 {
		t.Fatalf("%s %s %d: the response does not match openapi.yaml:\n  %s\nbody: %s", method, tmpl, status,
			strings.Join(errs, "\n  "), body)
	}
}

// validate checks v against schema and returns every problem.
func (d *doc) validate(schema, v any, at string) []string {
	if schema == nil {
		return nil
	}
	s, ok := d.resolve(schema).(map[string]any)
	if !ok {
		return []string{at + ": schema is not an object"}
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if t, ok := s["type"]; ok {
		var types []string
		switch tt := t.(type) {
		case string:
			types = []string{tt}
		case []any:
			for _, x := range tt {
				types = append(types, x.(string))
			}
		}
		matched := false
		for _, ty := range types {
			if jsonType(v, ty) {
				matched = true
			}
		}
		if !matched {
			fail("want type %v, got %s", types, describe(v))
			return errs
		}
	}
	if v == nil {
		return errs
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if e == v {
				found = true
			}
		}
		if !found {
			fail("%v is not one of %v", v, enum)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := x[r.(string)]; !ok {
					fail("missing required property %q", r)
				}
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k]; ok {
				errs = append(errs, d.validate(ps, x[k], at+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					fail("property %q is not documented", k)
				}
			case map[string]any:
				errs = append(errs, d.validate(ap, x[k], at+"."+k)...)
			}
		}
	case []any:
		if n, ok := s["minItems"].(float64); ok && float64(len(x)) < n {
			fail("has %d items, want at least %v", len(x), n)
		}
		if n, ok := s["maxItems"].(float64); ok && float64(len(x)) > n {
			fail("has %d items, want at most %v", len(x), n)
		}
		if items, ok := s["items"]; ok {
			for i, e := range x {
				errs = append(errs, d.validate(items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	case float64:
		if n, ok := s["minimum"].(float64); ok && x < n {
			fail("%v is below the minimum %v", x, n)
		}
		if n, ok := s["maximum"].(float64); ok && x > n {
			fail("%v is above the maximum %v", x, n)
		}
	case string:
		if n, ok := s["maxLength"].(float64); ok && float64(len([]rune(x))) > n {
			fail("is longer than %v", n)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(x) {
			fail("%q does not match %s", x, p)
		}
		switch s["format"] {
		case "uuid":
			if !regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`).MatchString(x) {
				fail("%q is not a uuid", x)
			}
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
				fail("%q is not an RFC 3339 date-time", x)
			}
		}
	}
	return errs
}

func jsonType(v any, ty string) bool {
	switch ty {
	case "null":
		return v == nil
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	}
	return false
}

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return fmt.Sprintf("string %q", v)
	}
	return fmt.Sprintf("%T %v", v, v)
}

func TestSchemaValidator(t *testing.T) {
	// The checker must reject what it claims to check, or the document
	// tests prove nothing.
	d := &doc{root: map[string]any{"components": map[string]any{"schemas": map[string]any{
		"T": map[string]any{
			"type": "object", "required": []any{"a"}, "additionalProperties": false,
			"properties": map[string]any{
				"a": map[string]any{"type": []any{"integer", "null"}, "minimum": 1.0},
				"b": map[string]any{"type": "string", "format": "uuid"},
				"c": map[string]any{"type": "array", "items": map[string]any{"enum": []any{"x"}}},
				"d": map[string]any{"type": "string", "format": "date-time", "pattern": "^2"},
			},
		},
	}}}}
	ref := map[string]any{"$ref": "#/components/schemas/T"}
	require.Empty(t, d.validate(ref, map[string]any{"a": 1.0, "b": "d4d4d4d4-0000-4000-8000-000000000004", "c": []any{"x"}, "d": "2026-01-02T03:04:05Z"}, "$"))
	require.Empty(t, d.validate(ref, map[string]any{"a": nil}, "$"))
	for name, bad := range map[string]any{
		"missing":    map[string]any{},
		"type":       map[string]any{"a": "1"},
		"fraction":   map[string]any{"a": 1.5},
		"minimum":    map[string]any{"a": 0.0},
		"extra":      map[string]any{"a": 1.0, "z": 1.0},
		"uuid":       map[string]any{"a": 1.0, "b": "nope"},
		"enum":       map[string]any{"a": 1.0, "c": []any{"y"}},
		"date-time":  map[string]any{"a": 1.0, "d": "2 Jan"},
		"not object": []any{},
	} {
		require.NotEmpty(t, d.validate(ref, bad, "$"), name)
	}
}
