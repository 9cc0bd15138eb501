package stack

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rusageCPU is this process's user+system CPU time as getrusage(2) counts it: a second,
// independent reading of what ProcessCPU reads from /proc.
func rusageCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestProcessCPU compares ProcessCPU with getrusage over a stretch of busy work. The work is
// measured in CPU time, not wall time, so a loaded machine only makes the test take longer.
func TestProcessCPU(t *testing.T) {
	const burn = 200 * time.Millisecond
	r0 := rusageCPU(t)
	p0, err := ProcessCPU(os.Getpid())
	require.NoError(t, err)
	deadline := time.Now().Add(2 * time.Minute) // a bound on the test, not on the machine's speed
	for rusageCPU(t)-r0 < burn {
		require.True(t, time.Now().Before(deadline), "did not get %s of CPU in 2 minutes", burn)
	}
	p1, err := ProcessCPU(os.Getpid())
	require.NoError(t, err)
	r1 := rusageCPU(t)

	// /proc counts in 10 ms ticks, truncated: each reading is at most a tick behind getrusage's
	// at the same moment, and getrusage was read before the first and after the second.
	const tick = 10 * time.Millisecond
	got := p1 - p0
	require.GreaterOrEqual(t, got, burn-2*tick, "getrusage saw at least %s between the two readings", burn)
	require.LessOrEqual(t, got, r1-r0+2*tick, "no more than getrusage saw around them")

	_, err = ProcessCPU(-1)
	require.Error(t, err)
}
