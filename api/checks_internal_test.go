package api

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCheckCacheIsBounded(t *testing.T) {
	c := newCheckCache(4)
	v := func(i int) ruleVersion { return ruleVersion{id: fmt.Sprint("rule-", i), updated: int64(i)} }
	for i := range 100 {
		c.put(v(i), fieldErrors{"payload_template": fmt.Sprint(i)})
		// A version in use stays through the turnovers.
		_, ok := c.get(v(0))
		assert.True(t, ok, "after %d puts", i+1)
		assert.LessOrEqual(t, len(c.cur)+len(c.old), 2*4)
	}
	got, ok := c.get(v(99))
	assert.True(t, ok)
	assert.Equal(t, "99", got["payload_template"])
	_, ok = c.get(v(50))
	assert.False(t, ok, "old versions are dropped")
	_, ok = c.get(ruleVersion{id: "rule-99", updated: 98})
	assert.False(t, ok, "another version of the same rule is another entry")
}

func TestIsPlainHTTP(t *testing.T) {
	for tmpl, want := range map[string]bool{
		"http://hooks.example.com/x":           true,
		" HTTP://hooks.example.com/{{.RunID}}": true,
		"https://hooks.example.com/x":          false,
		"{{if .Run}}http://x{{end}}":           false,
		"http{{.Nope}}://x":                    false,
		"hooks.example.com/x":                  false,
	} {
		assert.Equal(t, want, isPlainHTTP(tmpl), tmpl)
	}
}
