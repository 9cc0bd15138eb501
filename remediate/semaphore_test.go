package remediate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Containment waiters are served before snapshot and diagnostic waiters that queued earlier.
func TestPrioSemaphoreServesContainmentFirst(t *testing.T) {
	s := newPrioSemaphore(1)
	ctx := t.Context()
	require.NoError(t, s.Acquire(ctx, prioDiag)) // the one slot is busy

	var mu sync.Mutex
	var order []priority
	var wg sync.WaitGroup
	start := func(p priority) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, s.Acquire(ctx, p))
			mu.Lock()
			order = append(order, p)
			mu.Unlock()
			s.Release()
		}()
		// Wait until it is queued so the arrival order is known.
		require.Eventually(t, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.waiters[p]) > 0
		}, time.Second, time.Millisecond)
	}
	start(prioDiag)
	start(prioRecovery)
	start(prioContain)
	s.Release()
	wg.Wait()
	require.Equal(t, []priority{prioContain, prioRecovery, prioDiag}, order)
}

func TestPrioSemaphoreBounded(t *testing.T) {
	s := newPrioSemaphore(3)
	ctx := t.Context()
	var mu sync.Mutex
	cur, peak := 0, 0
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, s.Acquire(ctx, priority(i%int(numPriorities))))
			mu.Lock()
			cur++
			peak = max(peak, cur)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			cur--
			mu.Unlock()
			s.Release()
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, peak, 3)
	require.Equal(t, 0, s.held)
}

func TestPrioSemaphoreCancel(t *testing.T) {
	s := newPrioSemaphore(1)
	require.NoError(t, s.Acquire(t.Context(), prioContain))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.Acquire(ctx, prioContain), context.DeadlineExceeded)
	require.Zero(t, s.queued())
	s.Release()
	require.Equal(t, 0, s.held)
	// The slot is free again.
	require.NoError(t, s.Acquire(t.Context(), prioDiag))
}
