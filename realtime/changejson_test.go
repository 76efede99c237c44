package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// referenceChangePayload decodes a payload with encoding/json, as the client
// did before it had its own decoder: the behaviour parseChangePayload must
// match exactly.
func referenceChangePayload(payload []byte) ([]int64, wireData, error) {
	var w struct {
		IDs  []json.Number `json:"ids"`
		Data struct {
			Schema          string          `json:"schema"`
			Table           string          `json:"table"`
			Type            string          `json:"type"`
			CommitTimestamp *string         `json:"commit_timestamp"`
			Columns         json.RawMessage `json:"columns"`
			Record          map[string]any  `json:"record"`
			OldRecord       map[string]any  `json:"old_record"`
			Errors          []string        `json:"errors"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return nil, wireData{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, wireData{}, errors.New("data after the payload object")
	}
	ids := make([]int64, 0, len(w.IDs))
	for _, id := range w.IDs {
		if n, err := strconv.ParseInt(id.String(), 10, 64); err == nil {
			ids = append(ids, n)
		}
	}
	return ids, wireData{
		schema: w.Data.Schema, table: w.Data.Table, typ: w.Data.Type, commitTimestamp: w.Data.CommitTimestamp,
		columns: w.Data.Columns, record: w.Data.Record, oldRecord: w.Data.OldRecord, errors: w.Data.Errors,
	}, nil
}

// sameAsReference checks parseChangePayload against encoding/json on one
// payload: both fail, or both succeed with equal results.
func sameAsReference(t *testing.T, payload []byte) {
	t.Helper()
	wantIDs, want, wantErr := referenceChangePayload(payload)
	gotIDs, got, gotErr := parseChangePayload(payload)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("payload %q:\n encoding/json error: %v\n our error: %v", payload, wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	if !assert.Equal(t, wantIDs, gotIDs, "ids of %q", payload) ||
		!assert.Equal(t, want, got, "data of %q", payload) {
		t.FailNow()
	}
}

// changeVectors are payloads real servers send, and payloads built to catch
// a decoder that differs from encoding/json.
var changeVectors = []string{
	benchFrame[strings.Index(benchFrame, `{"ids"`) : len(benchFrame)-1],
	`{"ids":[1,2.5,"3"],"data":{"schema":"public","table":"t","type":"UPDATE","commit_timestamp":null,"columns":[],"record":{},"old_record":{},"errors":["Error 401: Unauthorized"]}}`,
	`{"ids":[7],"data":{"schema":"public","table":"t","type":"INSERT","commit_timestamp":"2026-01-01T00:00:00.000Z","columns":[{"name":"a","type":"jsonb"}],"record":{"a":{"x":[1,2,{"y":null}],"z":true,"w":false,"s":"\u00e9\ud83d\ude00"}},"old_record":null,"errors":null}}`,
	` { "ids" : [ 1 , 2 ] , "data" : { "type" : "DELETE" , "old_record" : { "id" : 1 } } } ` + "\n\t",
	`null`, `{}`, `[]`, `"x"`, `1`, `true`, ``, ` `, `{`, `}`, `{"ids":[1]}{}`, `{"ids":[1]} x`, `{"ids":[1],}`, `{,}`,
	`{"IDS":[1],"Data":{"TYPE":"UPDATE","Schema":"s","ſchema":"t","OLD_RECORD":{"k":1}}}`,
	`{"ids":[1],"data":{"type":"UPDATE","\u0074able":"t","sc\u0068ema":"s"}}`,
	`{"ids":[1],"data":{"type":"A"},"data":{"schema":"s"},"data":null}`,
	`{"ids":[5,6],"ids":[null],"data":{"type":"A","errors":["a","b"],"errors":[null]}}`,
	`{"ids":[9223372036854775807,9223372036854775808,-9223372036854775808,-0,0,1e3,1.0,"12","-1"],"data":{"type":"A"}}`,
	`{"ids":["x"],"data":{"type":"A"}}`, `{"ids":[""],"data":{"type":"A"}}`, `{"ids":[true],"data":{"type":"A"}}`,
	`{"ids":[[1]],"data":{"type":"A"}}`, `{"ids":{},"data":{"type":"A"}}`, `{"ids":"1","data":{"type":"A"}}`,
	`{"ids":[01],"data":{"type":"A"}}`, `{"ids":[1.],"data":{"type":"A"}}`, `{"ids":[1e],"data":{"type":"A"}}`, `{"ids":[-],"data":{"type":"A"}}`,
	`{"ids":[1],"data":{"type":5}}`, `{"ids":[1],"data":{"type":"A","schema":null}}`, `{"ids":[1],"data":{"type":"A","schema":"s","schema":null}}`,
	`{"ids":[1],"data":{"type":"A","commit_timestamp":"t","commit_timestamp":null}}`, `{"ids":[1],"data":{"type":"A","commit_timestamp":1}}`,
	`{"ids":[1],"data":{"type":"A","record":{"a":1},"record":{"b":2}}}`, `{"ids":[1],"data":{"type":"A","record":{"a":1},"record":null}}`,
	`{"ids":[1],"data":{"type":"A","record":[]}}`, `{"ids":[1],"data":{"type":"A","record":"x"}}`, `{"ids":[1],"data":{"type":"A","errors":"x"}}`,
	`{"ids":[1],"data":{"type":"A","errors":[1]}}`, `{"ids":[1],"data":{"type":"A","errors":[]}}`, `{"ids":[1],"data":[]}`, `{"ids":[1],"data":"x"}`,
	`{"ids":[1],"data":{"type":"A","columns":null}}`, `{"ids":[1],"data":{"type":"A","columns":  [ {"name":"a","type":"int4"} ]  }}`,
	`{"ids":[1],"data":{"type":"A","columns":"x"}}`, `{"ids":[1],"data":{"type":"A","unknown":{"deep":[1,{"x":"\n"}]}}}`,
	`{"ids":[1],"data":{"type":"A","record":{"s":"\ud800","t":"\ud800\u0041","u":"\udc00\ud800","v":"\ud83d\ude00x","w":"\\\/\b\f\n\r\t\""}}}`,
	"{\"ids\":[1],\"data\":{\"type\":\"A\",\"record\":{\"bad\":\"\xff\xfe\",\"surrogate\":\"\xed\xa0\x80\",\"ok\":\"\xef\xbf\xbd\"}}}",
	"{\"ids\":[1],\"data\":{\"type\":\"A\",\"record\":{\"ctl\":\"a\x01b\"}}}",
	`{"ids":[1],"data":{"type":"A","record":{"x":"\x"}}}`, `{"ids":[1],"data":{"type":"A","record":{"x":"\u12"}}}`, `{"ids":[1],"data":{"type":"A","record":{"x":"\u12G4"}}}`,
	`{"ids":[1],"data":{"type":"A","record":{"x":tru}}}`, `{"ids":[1],"data":{"type":"A","record":{"x":nul}}}`, `{"ids":[1],"data":{"type":"A","record":{"x":truex}}}`,
	`{"ids":[1],"data":{"type":"A","record":{"x":1,"x":"two"}}}`, `{"ids":[1],"data":{"type":"A","record":{"\u00e9":1,"é":2}}}`,
	`{"ids":[1],"data":{"type":"A","record":{"n":-0.5e-10,"m":123456789012345678901234567890,"o":1E+2}}}`,
	"{\"ids\":[1],\"data\":{\"type\":\"A\"}}\x00", `{"ids":[1] "data":{}}`, `{"ids" [1]}`, `{"ids":[1 2]}`, `{ids:[1]}`,
}

func TestParseChangePayloadMatchesEncodingJSON(t *testing.T) {
	for _, v := range changeVectors {
		sameAsReference(t, []byte(v))
	}
}

func TestParseChangePayloadNestingLimit(t *testing.T) {
	nested := func(depth int) []byte {
		// The payload object and data and record are three levels.
		inner := strings.Repeat("[", depth-3) + strings.Repeat("]", depth-3)
		return []byte(`{"ids":[1],"data":{"type":"A","record":{"deep":` + inner + `}}}`)
	}
	for _, depth := range []int{10000, 10001} {
		sameAsReference(t, nested(depth))
	}
	_, _, err := parseChangePayload(nested(10001))
	require.ErrorContains(t, err, "nested deeper than 10000")
	_, _, err = parseChangePayload(nested(10000))
	require.NoError(t, err)
}

func TestParseChangePayloadInternsRecordKeys(t *testing.T) {
	payload := []byte(`{"ids":[1],"data":{"type":"A","record":{"status":"failed"}}}`)
	_, a, err := parseChangePayload(payload)
	require.NoError(t, err)
	_, b, err := parseChangePayload(payload)
	require.NoError(t, err)
	keyOf := func(m map[string]any) string {
		for k := range m {
			return k
		}
		return ""
	}
	ka, kb := keyOf(a.record), keyOf(b.record)
	require.Equal(t, "status", ka)
	assert.Same(t, unsafe.StringData(ka), unsafe.StringData(kb), "the two changes share one key string")
}

func FuzzParseChangePayloadMatchesEncodingJSON(f *testing.F) {
	for _, v := range changeVectors {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		sameAsReference(t, payload)
	})
}
