package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// TestOpenAPI_RoutesMatchDocument checks that every route the handler
// serves is documented with its method, and that every documented
// operation is served.
func TestOpenAPI_RoutesMatchDocument(t *testing.T) {
	e := newEnv(t)
	d := e.doc
	require.Equal(t, "3.1.0", d.root["openapi"])

	served := map[string]bool{}
	for _, rt := range e.api.Routes() {
		served[rt.Method+" "+rt.Path] = true
		op, ok := d.operation(rt.Method, rt.Path)
		require.True(t, ok, "%s %s is served but not in openapi.yaml", rt.Method, rt.Path)
		_, hasSecurity := op["security"]
		assert.Equal(t, rt.Public, hasSecurity && len(op["security"].([]any)) == 0,
			"%s %s: openapi.yaml's security must say whether the route needs a token", rt.Method, rt.Path)
	}
	var documented []string
	for path, item := range d.paths() {
		for _, m := range httpMethods {
			if _, ok := item.(map[string]any)[m]; ok {
				documented = append(documented, strings.ToUpper(m)+" "+path)
			}
		}
	}
	sort.Strings(documented)
	for _, op := range documented {
		assert.True(t, served[op], "%s is in openapi.yaml but not served", op)
	}
	assert.Len(t, documented, len(served))

	// The handler serves the embedded document itself.
	r := e.do(asNobody, http.MethodGet, "/api/openapi.yaml", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Contains(t, string(r.raw), "openapi: 3.1.0")
}

// operations lists the document's operations in a stable order.
func (d *doc) operations() []struct {
	method, path string
	op           map[string]any
	item         map[string]any
} {
	var out []struct {
		method, path string
		op           map[string]any
		item         map[string]any
	}
	paths := make([]string, 0, len(d.paths()))
	for p := range d.paths() {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		item := d.paths()[p].(map[string]any)
		for _, m := range httpMethods {
			if op, ok := item[m].(map[string]any); ok {
				out = append(out, struct {
					method, path string
					op           map[string]any
					item         map[string]any
				}{strings.ToUpper(m), p, op, item})
			}
		}
	}
	return out
}

// mediaExamples returns the named examples of a media type object.
func mediaExamples(mt map[string]any) map[string]any {
	out := map[string]any{}
	if ex, ok := mt["examples"].(map[string]any); ok {
		for name, x := range ex {
			out[name] = x.(map[string]any)["value"]
		}
	}
	if x, ok := mt["example"]; ok {
		out["example"] = x
	}
	return out
}

// TestOpenAPI_ExamplesMatchSchemas checks every request and response
// example against its own schema, and that every operation has them.
func TestOpenAPI_ExamplesMatchSchemas(t *testing.T) {
	d := loadDoc(t)
	for _, o := range d.operations() {
		name := o.method + " " + o.path
		if rb, ok := o.op["requestBody"].(map[string]any); ok {
			mt := rb["content"].(map[string]any)["application/json"].(map[string]any)
			exs := mediaExamples(mt)
			assert.NotEmpty(t, exs, "%s: the request body needs an example", name)
			for exName, v := range exs {
				assert.Empty(t, d.validate(mt["schema"], v, "$"), "%s request example %q", name, exName)
			}
		}
		ok2xx := false
		for status, resp := range o.op["responses"].(map[string]any) {
			resp := d.resolve(resp).(map[string]any)
			content, _ := resp["content"].(map[string]any)
			mt, isJSON := content["application/json"].(map[string]any)
			if strings.HasPrefix(status, "2") {
				ok2xx = true
			}
			if !isJSON {
				continue
			}
			exs := mediaExamples(mt)
			assert.NotEmpty(t, exs, "%s %s: the response needs an example", name, status)
			for exName, v := range exs {
				assert.Empty(t, d.validate(mt["schema"], v, "$"), "%s %s response example %q", name, status, exName)
			}
		}
		assert.True(t, ok2xx, "%s documents no success response", name)
		if sec, public := o.op["security"].([]any); !public || len(sec) > 0 {
			_, ok := o.op["responses"].(map[string]any)["401"]
			assert.True(t, ok, "%s must document 401", name)
		}
	}
}

// TestOpenAPI_ExamplesRunAgainstHandlers sends every documented request
// example (with its parameters' examples) to the handler, against the
// fixtures the examples name, and checks that it succeeds with a documented
// status and a body matching the documented schema.
func TestOpenAPI_ExamplesRunAgainstHandlers(t *testing.T) {
	e := newEnv(t)
	rcv := newReceiver(t)
	d := e.doc
	reset := func() {
		e.exec(`delete from public.alert_configs`)
		seal := func(s string) string {
			v, err := e.keyring.Seal(s)
			require.NoError(t, err)
			return v
		}
		e.exec(`insert into public.alert_configs (id, project_id, workflow_slug, name, events, delay_threshold_seconds,
				webhook_url, signing_secrets, custom_headers)
			values ($1, $2, 'billing', 'Page on billing failures', '{failed,delayed}', 900, $3, $4, $5)`,
			ruleA, projectA, seal(rcv.URL+"/hook"),
			[]string{seal(receiverSecret), seal("whsec_dGhlIG9sZCBzZWNyZXQgb2YgdGhpcyBydWxl")},
			map[string]string{"X-Team": seal("payments")})
		e.insertAlert(alertA, ruleA, projectA, "billing", runA, "failed", "failed", time.Now().Add(-time.Minute))
	}

	for _, o := range d.operations() {
		params := map[string]map[string]any{} // "in:name" → parameter
		for _, list := range []any{o.item["parameters"], o.op["parameters"]} {
			l, _ := list.([]any)
			for _, p := range l {
				p := d.resolve(p).(map[string]any)
				params[p["in"].(string)+":"+p["name"].(string)] = p
			}
		}
		path, q := o.path, url.Values{}
		for _, p := range params {
			ex, ok := p["example"]
			if !ok {
				require.NotEqual(t, "path", p["in"], "%s %s: path parameter %s needs an example", o.method, o.path, p["name"])
				continue
			}
			switch p["in"] {
			case "path":
				path = strings.ReplaceAll(path, "{"+p["name"].(string)+"}", url.PathEscape(toString(ex)))
			case "query":
				q.Set(p["name"].(string), toString(ex))
			}
		}
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		bodies := map[string]any{"(no body)": nil}
		if rb, ok := o.op["requestBody"].(map[string]any); ok {
			bodies = mediaExamples(rb["content"].(map[string]any)["application/json"].(map[string]any))
			if req, _ := rb["required"].(bool); !req {
				bodies["(no body)"] = nil
			}
		}
		for name, body := range bodies {
			t.Run(o.method+" "+o.path+" "+name, func(t *testing.T) {
				reset()
				var raw []byte
				if body != nil {
					var err error
					raw, err = json.Marshal(body)
					require.NoError(t, err)
				}
				req, err := http.NewRequest(o.method, e.srv.URL+path, bytes.NewReader(raw))
				require.NoError(t, err)
				if body != nil {
					req.Header.Set("Content-Type", "application/json")
				}
				req.Header.Set("Authorization", "Bearer "+operatorToken)
				r := e.send(req) // checks the answer against the document
				require.True(t, r.status >= 200 && r.status < 300, "%s %s example %q: %d %s", o.method, path, name, r.status, r.raw)
			})
		}
	}
	assert.NotEmpty(t, rcv.Deliveries(), "the test-send example reached the receiver")
}

// toString renders a parameter example as it goes into a URL.
func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}
