package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetentionFlag(t *testing.T) {
	f, err := parseFlags(nil)
	require.NoError(t, err)
	require.Equal(t, 720*time.Hour, f.retention, "30 days by default")
	require.False(t, f.listenSet)

	for arg, want := range map[string]time.Duration{"--storage.retention=48h": 48 * time.Hour, "--storage.retention=0s": 0} {
		f, err = parseFlags([]string{arg, "--web.listen-address=127.0.0.1:1"})
		require.NoError(t, err, arg)
		require.Equal(t, want, f.retention, arg)
		require.True(t, f.listenSet)
	}

	_, err = parseFlags([]string{"--storage.retention=-1h"})
	require.ErrorContains(t, err, "--storage.retention=-1h0m0s: want a duration ≥ 0")
	_, err = parseFlags([]string{"--storage.retention=a month"})
	require.ErrorContains(t, err, `invalid duration "a month"`)
}
