// Package jsonenc appends JSON text without reflection, byte for byte as
// encoding/json would write it, for the hot paths that build JSON by hand
// (request bodies, Realtime frames in the client and the stand-in). Its
// tests hold it to encoding/json.
//
// github.com/go-json-experiment/json (the encoding/json/v2 candidate)
// marshalling the same structs cost 1.6 to 4 times the CPU, and writes
// invalid UTF-8 as a literal U+FFFD where encoding/json writes \ufffd
// (docs/benchmarks.md, "JSON").
package jsonenc

import "unicode/utf8"

// hexDigits are the lower-case hex digits encoding/json uses in escapes.
const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes written as they are: everything from space
// up but ", \ and the HTML characters.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendString appends s as a JSON string, escaped byte for byte as
// encoding/json.Marshal escapes strings: ", \ and control characters, the
// HTML characters <, > and &, U+2028 and U+2029, and invalid UTF-8 (as
// U+FFFD).
func AppendString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func decodeRune[S string | []byte](s S) (rune, int) {
	var buf [utf8.UTFMax]byte
	n := copy(buf[:], s)
	return utf8.DecodeRune(buf[:n])
}
