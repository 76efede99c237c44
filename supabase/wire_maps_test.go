package supabase

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// mapsByEncodingJSON is what decodeMaps replaced: each row decoded by
// encoding/json into a map with UseNumber.
func mapsByEncodingJSON(body []byte) ([]map[string]any, error) {
	var raws []json.RawMessage
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, err
	}
	var rows []map[string]any
	for _, raw := range raws {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, err
		}
		if m == nil {
			return nil, errors.New("not an object")
		}
		rows = append(rows, m)
	}
	return rows, nil
}

func sameMapsAsEncodingJSON(t *testing.T, body []byte) {
	t.Helper()
	want, wantErr := mapsByEncodingJSON(body)
	got, gotErr := decodeMaps(body)
	require.Equal(t, wantErr == nil, gotErr == nil, "%q: encoding/json %v, ours %v", body, wantErr, gotErr)
	if wantErr == nil {
		require.Equal(t, want, got, "%q", body)
	}
}

var mapVectors = []string{
	`[{"id":"7b0c…","project_id":"p","status":"failed","started_at":"2026-12-06T05:00:00+00:00","finished_at":null,"n":12.50,"ok":true}]`,
	`[]`, `null`, ` [ ] `, ``, ` `, `[null]`, `[{}]`, `[1]`, `["a"]`, `[[]]`, `{}`, `"x"`, `7`, `nul`,
	`[{"a":1},{"a":2,"b":{"c":[1,"x",null,false,{"d":-0.5e3}]}}]`, `[{"a":"x","a":"y"}]`, `[{"A":1,"a":2}]`,
	`[{"\u0069d":"y","\u00e9":"\ud800","k":"\xff"}]`, `[{"a":"a\u0000b"}]`, "[{\"a\":\"a\x01\"}]",
	`[{"a":1}]x`, `[{"a":1},]`, `[{"a":1}`, `[{"a" 1}]`, `[{"a":tru}]`, `[{"a":01}]`, `[{"a":-}]`, `[{"a":1.}]`,
	`[{"a":1},null,{"b":2}]`, `[{"a":9223372036854775808}]`, `[{"a":1e400}]`,
}

func TestDecodeMapsMatchesEncodingJSON(t *testing.T) {
	for _, v := range mapVectors {
		sameMapsAsEncodingJSON(t, []byte(v))
	}
	deep := `[{"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}]`
	sameMapsAsEncodingJSON(t, []byte(deep))
}

func TestDecodeObjectMatchesEncodingJSON(t *testing.T) {
	for _, v := range []string{`{"a":1,"b":[true,null]}`, `{}`, ` {"a":"x"} `, `null`, `[]`, `{"a":1}x`, `{"a":}`} {
		want, wantErr := mapsByEncodingJSON([]byte("[" + v + "]"))
		got, gotErr := decodeObject(json.RawMessage(v))
		require.Equal(t, wantErr == nil, gotErr == nil, "%q: encoding/json %v, ours %v", v, wantErr, gotErr)
		if wantErr == nil {
			require.Equal(t, want[0], got, "%q", v)
		}
	}
}

func FuzzDecodeMapsMatchesEncodingJSON(f *testing.F) {
	for _, v := range mapVectors {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sameMapsAsEncodingJSON(t, body)
	})
}

// benchRunsPage is a page of n workflow_runs rows as PostgREST answers the
// reconciler's select.
func benchRunsPage(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":"0b9c6f0e-6a57-4f7e-9d55-5a0c1d2e3f40","project_id":"3f1a9f0e-1c2b-4d5e-8f90-a1b2c3d4e5f6",` +
			`"workflow_id":"7d2e4f60-8a9b-4c1d-9e2f-3a4b5c6d7e8f","status":"failed","started_at":"2026-12-06T05:00:00.123456+00:00",` +
			`"finished_at":"2026-12-06T05:00:01.654321+00:00","created_at":"2026-12-06T05:00:00.123456+00:00",` +
			`"updated_at":"2026-12-06T05:00:01.654321+00:00"}`)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func BenchmarkDecodeRunsPage(b *testing.B) {
	page := benchRunsPage(1000)
	for _, c := range []struct {
		name   string
		decode func([]byte) ([]map[string]any, error)
	}{{"ours", decodeMaps}, {"encoding_json", mapsByEncodingJSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(page)))
			for b.Loop() {
				if _, err := c.decode(page); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
