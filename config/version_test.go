package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersion(t *testing.T) {
	require.Equal(t, "dev", Version(), "tests run without a stamped or module version")
	require.Equal(t, "meshhook-alerts/dev", DefaultUserAgent())
	require.Equal(t, DefaultUserAgent(), Default().Sender.UserAgent)

	version = "v1.2.3"
	t.Cleanup(func() { version = "" })
	require.Equal(t, "v1.2.3", Version())
	require.Equal(t, "meshhook-alerts/v1.2.3", DefaultUserAgent())
}
