package sender

import (
	"errors"
	"fmt"
	"strings"
)

// ValidHeaderName reports whether name can name a custom header: an HTTP
// token (RFC 9110, section 5.6.2), non-empty.
func ValidHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// ValidHeaderValue reports whether v can be sent as a custom header's
// value: without a line break or NUL, which would end or cut the header.
func ValidHeaderValue(v string) bool { return !strings.ContainsAny(v, "\r\n\x00") }

// SetsHeader reports whether the sender sets the header name (in any case)
// itself on every delivery, or leaves it to the HTTP client, so that a
// custom header of that name would be overridden or would break the
// request.
func SetsHeader(name string) bool {
	switch strings.ToLower(name) {
	case "content-type", "content-length", "host", "user-agent", "connection", "transfer-encoding",
		HeaderID, HeaderTimestamp, HeaderSignature, strings.ToLower(HeaderMeshHook):
		return true
	}
	return false
}

// checkHeader validates a custom header without quoting its value.
func checkHeader(name, value string) error {
	switch {
	case name == "":
		return errors.New("a custom header has an empty name")
	case !ValidHeaderName(name):
		return fmt.Errorf("custom header %q has an invalid name", name)
	case !ValidHeaderValue(value):
		return fmt.Errorf("custom header %q has a value with a line break or NUL", name)
	}
	return nil
}
