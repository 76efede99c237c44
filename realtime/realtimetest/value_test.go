package realtimetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests hold the one-pass value encoders to the reference path in
// refpath_test.go (and to encoding/json) on the same input.

// valueTypes are the column types the value tests cover.
var valueTypes = func() map[string]*typeInfo {
	m := map[string]*typeInfo{}
	for _, name := range []string{"text", "varchar", "int2", "int4", "int8", "oid", "numeric", "float4", "float8", "bool",
		"json", "jsonb", "timestamptz", "timestamp", "uuid", "bytea", "date", "interval", "time"} {
		m[name] = &typeInfo{Name: name}
	}
	for _, name := range []string{"text", "int4", "jsonb", "json", "bool", "timestamptz", "bytea", "numeric", "uuid"} {
		m["_"+name] = &typeInfo{Name: "_" + name, Category: 'A', Elem: m[name]}
	}
	return m
}()

// valueCases are Postgres text outputs per type, including values that
// fall back to strings.
var valueCases = map[string][]string{
	"text":         {"", "plain", "<script>&</script>", "quote \" back \\ slash", "tab\tline\n", "héllo ✓ 🎉", "sep\u2028\u2029", "null", "123"},
	"varchar":      {"v<>"},
	"int2":         {"0", "-32768", "32767"},
	"int4":         {"42", "-7", "2147483647"},
	"int8":         {"9007199254740993", "-9223372036854775808", "9223372036854775807"},
	"oid":          {"4294967295"},
	"numeric":      {"12.50", "0.0001", "-0", "NaN", "Infinity", "-Infinity", "1e+20", "123456789012345678901234567890.123", ".5", "5.", "01", "1e5", "1E-5", "+1", " 1", "1 ", ""},
	"float4":       {"1.5", "NaN", "-Infinity", "3.4028235e+38"},
	"float8":       {"1e-05", "1e+20", "Infinity", "-0", "2.2250738585072014e-308"},
	"bool":         {"t", "f", "true", "false", "maybe"},
	"json":         {`{"b": 1, "a": [1, 2]}`, "  [ 1 ,\n 2 ]  ", `{"a": 1, "a": 2}`, `"<tag>&"`, `{"s": "x\u2028y"}`, `{"s": "\u003c"}`, `{broken`, `nul`, `12`, `"str"`},
	"jsonb":        {`{"k": [1, 2], "s": "x"}`, `{"html": "<a href='x'>&</a>"}`, "{\"sep\": \"a\u2028b\"}", `[]`, `null`, `true`, `{"n": 1.50}`},
	"timestamptz":  {"2025-11-03 09:32:55.123+00", "2025-11-03 10:32:55+01", "2025-11-03 09:32:55.5+05:30", "2025-11-03 09:32:55.123456-03", "2025-11-03 09:32:55+05:30:15", "2024-02-29 23:59:59.999999+00", "2025-12-31 23:00:00-02", "0001-01-01 00:00:00+00", "0001-01-01 00:00:00+01", "9999-12-31 23:59:59-01", "2025-11-03 09:32:55.1234567+00", "2025-02-29 00:00:00+00", "2025-11-03 24:00:00+00", "2025-11-03 09:32:60+00", "infinity", "-infinity", "0044-03-15 12:00:00+00 BC", "12025-11-03 09:32:55+00", "2025-11-03T09:32:55+00:00", "2025-11-03 09:32:55Z", "2025-11-03 09:32:55+15:59", "2025-11-03 09:32:55+24", "2025-11-03 9:32:55+00", "2025-11-03 09:32:55,5+00"},
	"timestamp":    {"2025-11-03 09:32:55.5", "2025-11-03 09:32:55", "2025-11-03T09:32:55", "2024-02-29 00:00:00.000001", "infinity", "2025-13-01 00:00:00"},
	"uuid":         {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	"bytea":        {`\x0102030405`, `\x`, `plain`},
	"date":         {"2025-11-03", "infinity"},
	"interval":     {"1 day 02:03:04", "-00:00:01"},
	"time":         {"09:32:55.123"},
	"_text":        {`{a,"b c",NULL}`, `{}`, `{"<x>","a\"b","c\\d",null,NULL}`, `{{a,b},{c,d}}`, `[1:2]={x,y}`, `{unterminated`, `{"nul"}`},
	"_int4":        {`{1,2}`, `{{1,2},{3,4}}`, `{NULL,3}`, `{}`},
	"_jsonb":       {`{"{\"a\": 1}","[1, 2]",NULL,"{\"h\": \"<&>\"}"}`, `{"{broken"}`},
	"_json":        {`{"{\"a\" : 1}"}`},
	"_bool":        {`{t,f,NULL}`},
	"_timestamptz": {`{"2025-11-03 09:32:55.123+00","2025-11-03 10:32:55+01",NULL}`},
	"_bytea":       {`{"\\x0102",NULL}`},
	"_numeric":     {`{1.50,NaN,Infinity}`},
	"_uuid":        {`{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}`},
}

// finalJSON is raw as encoding/json embeds it in a payload.
func finalJSON(t *testing.T, raw []byte) string {
	t.Helper()
	out, err := json.Marshal(json.RawMessage(raw))
	require.NoError(t, err, "%s", raw)
	return string(out)
}

func TestAppendValue_MatchesReference(t *testing.T) {
	for typ, texts := range valueCases {
		ti := valueTypes[typ]
		require.NotNil(t, ti, typ)
		for _, text := range texts {
			want := refDecodeValue(text, ti)
			got := appendValue([]byte("prefix"), []byte(text), kindOf(ti), ti.Elem)
			require.True(t, strings.HasPrefix(string(got), "prefix"))
			got = got[len("prefix"):]
			assert.Equal(t, string(want), string(got), "%s %q: the value filters read", typ, text)
			assert.Equal(t, finalJSON(t, want), string(htmlEscaped(got)), "%s %q: the value frames carry", typ, text)
			assert.Equal(t, string(want), string(decodeValue(text, ti)), "%s %q: decodeValue", typ, text)
		}
	}
	assert.Equal(t, string(refDecodeValue("x", nil)), string(decodeValue("x", nil)), "no type info")
}

func TestParsePGTimestamp_FastPathMatchesTimeParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		ts := time.Date(1+rng.IntN(9999), time.Month(1+rng.IntN(12)), 1+rng.IntN(31), rng.IntN(24), rng.IntN(60), rng.IntN(60), 0, time.UTC)
		text := ts.Format("2006-01-02 15:04:05")
		switch rng.IntN(3) {
		case 1:
			text += "." + fmt.Sprint(rng.IntN(1000000))
		case 2:
			text += fmt.Sprintf(".%0*d", 1+rng.IntN(9), rng.IntN(10))
		}
		withZone := rng.IntN(4) != 0
		if withZone {
			sign := "+-"[rng.IntN(2)]
			switch rng.IntN(3) {
			case 0:
				text += fmt.Sprintf("%c%02d", sign, rng.IntN(16))
			case 1:
				text += fmt.Sprintf("%c%02d:%02d", sign, rng.IntN(16), rng.IntN(60))
			default:
				text += fmt.Sprintf("%c%02d:%02d:%02d", sign, rng.IntN(16), rng.IntN(60), rng.IntN(60))
			}
		}
		typ := valueTypes["timestamp"]
		if withZone {
			typ = valueTypes["timestamptz"]
		}
		want := refDecodeValue(text, typ)
		got := decodeValue(text, typ)
		require.Equal(t, string(want), string(got), "%q", text)
	}
}

func TestIsJSONNumber_MatchesReference(t *testing.T) {
	for _, s := range []string{"", "0", "-0", "00", "01", "1", "-", "1.", ".1", "1.0", "1e", "1e+", "1e+5", "1E-05", "-1.5e3",
		"1.5.5", "0x10", "NaN", "Infinity", " 1", "1 ", "1,2", "+1", "123456789012345678901234567890"} {
		assert.Equal(t, refIsJSONNumber(s), isJSONNumber([]byte(s)), "%q", s)
	}
}
