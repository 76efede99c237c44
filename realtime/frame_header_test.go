package realtime

import (
	"bytes"
	"encoding/json"
	"testing"
)

// referenceV2 decodes a V2 frame with encoding/json: the frame decodeV2
// must return for any frame encoding/json accepts. ok is false if
// encoding/json refuses the frame (or its shape is wrong).
func referenceV2(data []byte) (f Frame, ok bool) {
	var elems []json.RawMessage
	if json.Unmarshal(data, &elems) != nil || len(elems) != 5 {
		return Frame{}, false
	}
	for i, dst := range [...]*string{&f.JoinRef, &f.Ref, &f.Topic, &f.Event} {
		switch raw := elems[i]; {
		case raw[0] == '"':
			if json.Unmarshal(raw, dst) != nil {
				return Frame{}, false
			}
		case i >= 2:
			return Frame{}, false
		case raw[0] == '-' || ('0' <= raw[0] && raw[0] <= '9'):
			*dst = string(raw)
		case string(raw) != jsonNull:
			return Frame{}, false
		}
	}
	if !isJSONObject(elems[4]) {
		return Frame{}, false
	}
	f.Payload = elems[4]
	return f, true
}

// sameV2AsReference checks decodeV2 against encoding/json on one frame.
// decodeV2 leaves the payload to its decoder, so it may accept a frame
// whose payload is not valid JSON, but nothing else encoding/json refuses,
// and it must accept every frame encoding/json accepts, with the same
// elements.
func sameV2AsReference(t *testing.T, data []byte) {
	t.Helper()
	want, wantOK := referenceV2(data)
	got, err := decodeV2(data)
	switch {
	case wantOK && err != nil:
		t.Fatalf("frame %q: encoding/json accepts it, decodeV2 says %v", data, err)
	case err == nil && !wantOK && json.Valid(got.Payload):
		t.Fatalf("frame %q: encoding/json refuses it, decodeV2 accepts it as %+v", data, got)
	case wantOK && (got.JoinRef != want.JoinRef || got.Ref != want.Ref || got.Topic != want.Topic ||
		got.Event != want.Event || !bytes.Equal(got.Payload, want.Payload)):
		t.Fatalf("frame %q:\n encoding/json %+v\n decodeV2      %+v", data, want, got)
	}
}

var headerVectors = []string{
	`[null,null,"t","e",{}]`, ` [ "1" , 2 , "t" , "e" , { } ] `, "[\n\"1\",\t-0,\"t\",\"e\",{\"a\":[1]}]\r\n",
	`[1e3,-12.5E-3,"t","e",{}]`, `["\u0031","\"","realtime:\u00e9","ph\\x",{}]`, "[\"\xff\",null,\"t\xfe\",\"e\",{}]",
	`["\ud800",null,"\udc00\ud800","\ud83d\ude00",{}]`, `[null,null,"t","e"]`, `[null,null,"t","e",{},1]`,
	`[null,null,"t","e",{}`, `[null,null,"t","e",[]]`, `[null,null,"t","e",null]`, `[true,null,"t","e",{}]`,
	`[null,false,"t","e",{}]`, `[{},null,"t","e",{}]`, `[null,[],"t","e",{}]`, `[null,null,1,"e",{}]`, `[null,null,"t",null,{}]`,
	`[nul,null,"t","e",{}]`, `[nullx,null,"t","e",{}]`, `[01,null,"t","e",{}]`, `[1.,null,"t","e",{}]`, `[-,null,"t","e",{}]`,
	`[1x,null,"t","e",{}]`, `[null null,"t","e",{}]`, `[null,,null,"t","e",{}]`, `[null,null,"t","e",,{}]`, `[,null,null,"t","e",{}]`,
	`["a\x",null,"t","e",{}]`, `["a\u12",null,"t","e",{}]`, "[\"a\x01\",null,\"t\",\"e\",{}]", `["a,null,"t","e",{}]`,
	`[null,null,"t","e",{]`, `[null,null,"t","e",{}}]`, `[null,null,"t","e",{"a":}]`, `[]`, `[null]`, `"x"`, `{}`, ``,
}

func TestDecodeV2MatchesEncodingJSON(t *testing.T) {
	for _, v := range vecV2 {
		sameV2AsReference(t, []byte(v.raw))
	}
	for _, v := range headerVectors {
		sameV2AsReference(t, []byte(v))
	}
}

func FuzzDecodeV2MatchesEncodingJSON(f *testing.F) {
	for _, v := range vecV2 {
		f.Add([]byte(v.raw))
	}
	for _, v := range headerVectors {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameV2AsReference(t, data)
	})
}

// BenchmarkDecodeFrameV2 measures reading a change frame's header, as the
// session's reader does (the payload is left to decodeChange).
func BenchmarkDecodeFrameV2(b *testing.B) {
	raw := []byte(benchFrame)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeFrame(VsnV2, raw, true); err != nil {
			b.Fatal(err)
		}
	}
}
