package remediate

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

func openJournal(t *testing.T, dir string) *incident.Journal {
	t.Helper()
	j, err := incident.Open(filepath.Join(dir, "journal.db"), incident.Options{})
	require.NoError(t, err)
	return j
}

// The breaker opens after N failed remediations, refuses during the cool-down, allows one
// half-open trial, and keeps all of that across a restart (a new breakers on the same journal).
func TestBreakerPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	cfg := config.BreakerConfig{ConsecutiveFailures: 3, Cooldown: model.Duration(300 * time.Millisecond)}
	var seen []BreakerState
	j := openJournal(t, dir)
	b := newBreakers(j, cfg, func(_ string, s BreakerState) { seen = append(seen, s) })

	st, err := b.State(ctx, "alpha")
	require.NoError(t, err)
	require.Equal(t, BreakerClosed, st)
	for range 2 {
		require.NoError(t, b.Record(ctx, "alpha", false))
	}
	st, _ = b.State(ctx, "alpha")
	require.Equal(t, BreakerClosed, st, "two failures of three")

	// Restart between the second and third failure: the count survives.
	require.NoError(t, j.Close())
	j = openJournal(t, dir)
	b = newBreakers(j, cfg, nil)
	require.NoError(t, b.Record(ctx, "alpha", false))
	st, _ = b.State(ctx, "alpha")
	require.Equal(t, BreakerOpen, st)
	st, _ = b.State(ctx, "beta")
	require.Equal(t, BreakerClosed, st, "per cluster")

	// Restart while open: still open.
	require.NoError(t, j.Close())
	j = openJournal(t, dir)
	defer j.Close()
	b = newBreakers(j, cfg, nil)
	st, _ = b.State(ctx, "alpha")
	require.Equal(t, BreakerOpen, st)

	require.Eventually(t, func() bool {
		st, _ := b.State(ctx, "alpha")
		return st == BreakerHalfOpen
	}, 2*time.Second, 20*time.Millisecond, "half-open after the cool-down")
	// The half-open trial fails: open again.
	require.NoError(t, b.Record(ctx, "alpha", false))
	st, _ = b.State(ctx, "alpha")
	require.Equal(t, BreakerOpen, st)
	require.Eventually(t, func() bool {
		st, _ := b.State(ctx, "alpha")
		return st == BreakerHalfOpen
	}, 2*time.Second, 20*time.Millisecond)
	// The trial succeeds: closed.
	require.NoError(t, b.Record(ctx, "alpha", true))
	st, _ = b.State(ctx, "alpha")
	require.Equal(t, BreakerClosed, st)
	require.Contains(t, seen, BreakerClosed)
}

// Two replicas' breakers on one store count every failure: their read-change-writes of the
// shared state take the store's lock in turn, so none is lost.
func TestBreakersShareAStoreWithoutLostUpdates(t *testing.T) {
	j := openJournal(t, t.TempDir())
	defer j.Close()
	cfg := config.BreakerConfig{ConsecutiveFailures: 40, Cooldown: model.Duration(time.Hour)}
	a, b := newBreakers(j, cfg, nil), newBreakers(j, cfg, nil)
	var wg sync.WaitGroup
	for _, br := range []*breakers{a, b} {
		wg.Go(func() {
			for range 20 {
				require.NoError(t, br.Record(t.Context(), "c1", false))
			}
		})
	}
	wg.Wait()
	st, err := a.State(t.Context(), "c1")
	require.NoError(t, err)
	require.Equal(t, BreakerOpen, st, "40 failures between the two replicas open a breaker of 40")
}

// failingStates is a state store whose reads fail while down is set (its writes, and so the
// breaker's lock, still work: the read between the lock and the state is what fails).
type failingStates struct {
	stateStore
	mu   sync.Mutex
	down bool
}

func (f *failingStates) GetState(ctx context.Context, key string) ([]byte, error) {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		return nil, errors.New("store unreachable")
	}
	return f.stateStore.GetState(ctx, key)
}

// A store that fails while a breaker is first loaded gives an error (gobreaker's constructor
// would dereference nil on it), and a store that cannot be read never resets a breaker's counts.
func TestBreakerLoadOnAFailingStoreIsAnError(t *testing.T) {
	ctx := t.Context()
	j := openJournal(t, t.TempDir())
	defer j.Close()
	cfg := config.BreakerConfig{ConsecutiveFailures: 2, Cooldown: model.Duration(time.Hour)}
	b := newBreakers(j, cfg, nil)
	require.NoError(t, b.Record(ctx, "alpha", false))

	fs := &failingStates{stateStore: j, down: true}
	b = newBreakers(fs, cfg, nil)
	_, err := b.State(ctx, "alpha")
	require.ErrorContains(t, err, "store unreachable")
	require.Error(t, b.Record(ctx, "alpha", false))

	fs.mu.Lock()
	fs.down = false
	fs.mu.Unlock()
	require.NoError(t, b.Record(ctx, "alpha", false))
	st, err := b.State(ctx, "alpha")
	require.NoError(t, err)
	require.Equal(t, BreakerOpen, st, "the failure recorded before the outage still counts")

	// A state document that is not gobreaker's is named, not overwritten.
	require.NoError(t, j.UpdateState(ctx, breakerStateKey("beta"), func([]byte) ([]byte, error) { return []byte("{oops"), nil }))
	_, err = newBreakers(j, cfg, nil).State(ctx, "beta")
	require.ErrorContains(t, err, breakerStateKey("beta"))
}
