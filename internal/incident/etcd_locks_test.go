package incident

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKeyLocks(t *testing.T) {
	var k keyLocks
	unlock, err := k.lock(t.Context(), "a")
	require.NoError(t, err)
	other, err := k.lock(t.Context(), "b")
	require.NoError(t, err, "another key is not blocked")
	other()

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = k.lock(ctx, "a")
	require.ErrorIs(t, err, context.Canceled, "a waiter gives up with its context")

	got := make(chan func())
	go func() {
		u, err := k.lock(t.Context(), "a")
		require.NoError(t, err)
		got <- u
	}()
	unlock()
	(<-got)()
	require.Empty(t, k.m, "no key kept once nobody holds or waits for it")
}
