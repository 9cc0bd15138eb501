package incident

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// A journal already open elsewhere fails Open at once with ErrLocked naming the holder (flock
// locks are per open file, so a second Open in this process is refused like another daemon).
func TestOpenLockedJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	j, err := Open(path, Options{})
	require.NoError(t, err)
	_, err = Open(path, Options{})
	require.ErrorIs(t, err, ErrLocked)
	want := "pid unknown"
	if runtime.GOOS == "linux" {
		want = fmt.Sprintf("pid %d", os.Getpid())
	}
	require.ErrorContains(t, err, "journal is locked by another process ("+want+")")
	require.ErrorContains(t, err, path)

	require.NoError(t, j.Close())
	j, err = Open(path, Options{})
	require.NoError(t, err, "the lock goes with the first journal")
	require.NoError(t, j.Close())
}
