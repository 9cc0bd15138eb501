package remediate

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// EndAt shortens an active silence in place (after recovered, it ends recovered_grace later),
// never lengthens it, and leaves an expired one alone.
func TestEndAtAgainstAlertmanager(t *testing.T) {
	am := startAlertmanager(t)
	s := testSilencer(t, am.URL)
	ctx := t.Context()
	now := time.Now()
	id, ends, err := s.Create(ctx, testIncident("inc-000007", "alpha"), now)
	require.NoError(t, err)

	at := now.Add(20 * time.Second)
	require.True(t, at.Before(ends))
	got, err := s.EndAt(ctx, id, at)
	require.NoError(t, err)
	require.WithinDuration(t, at, got, time.Millisecond)
	sil, err := s.get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "active", state(sil), "it still mutes until then")
	require.WithinDuration(t, at, time.Time(*sil.EndsAt), time.Millisecond)
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1, "updated in place")

	got, err = s.EndAt(ctx, id, at.Add(time.Hour))
	require.NoError(t, err)
	require.WithinDuration(t, at, got, time.Millisecond, "never later than it already ends")

	require.NoError(t, s.Expire(ctx, id))
	_, err = s.EndAt(ctx, id, now.Add(time.Hour))
	require.NoError(t, err)
	sil, err = s.get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "expired", state(sil), "an expired silence stays expired")
}
