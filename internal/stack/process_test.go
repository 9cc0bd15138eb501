package stack

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProcessCPU(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	require.NoError(t, err)
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; { // burn CPU
	}
	after, err := ProcessCPU(os.Getpid())
	require.NoError(t, err)
	require.GreaterOrEqual(t, after-before, 150*time.Millisecond, "300 ms of spinning shows as CPU time")

	_, err = ProcessCPU(-1)
	require.Error(t, err)
}
