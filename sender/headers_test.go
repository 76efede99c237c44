package sender

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHeaderChecks(t *testing.T) {
	for name, valid := range map[string]bool{
		"X-Team": true, "x_team.v2": true, "!#$%&'*+-.^_`|~09AZaz": true,
		"": false, "X Team": false, "X-Team:": false, "X\tTeam": false, "X-Tëam": false, "X(Team)": false, "X/Team": false,
	} {
		assert.Equal(t, valid, ValidHeaderName(name), "%q", name)
		assert.Equal(t, valid, checkHeader(name, "v") == nil, "%q", name)
	}
	for v, valid := range map[string]bool{"": true, "a b\tc": true, "a\r\nX-B: b": false, "a\nb": false, "a\x00": false} {
		assert.Equal(t, valid, ValidHeaderValue(v), "%q", v)
		assert.Equal(t, valid, checkHeader("X-A", v) == nil, "%q", v)
	}
	assert.EqualError(t, checkHeader("", "v"), "a custom header has an empty name")
	assert.EqualError(t, checkHeader("X A", "v"), `custom header "X A" has an invalid name`)
	assert.EqualError(t, checkHeader("X-A", "a\nb"), `custom header "X-A" has a value with a line break or NUL`)

	// The headers the sender sets on every attempt, in any case.
	for _, name := range []string{HeaderID, HeaderTimestamp, HeaderSignature, HeaderMeshHook, "x-signature",
		"Content-Type", "content-length", "HOST", "User-Agent", "Connection", "Transfer-Encoding"} {
		assert.True(t, SetsHeader(name), name)
	}
	assert.False(t, SetsHeader("X-Team"))
	assert.False(t, SetsHeader("Authorization"), "a rule may authenticate itself")
}
