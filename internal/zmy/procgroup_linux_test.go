package zmy

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// orphanParentEnv makes the test binary act as a daemon that starts one long zmyctl and waits:
// TestChildDiesWithTheDaemon kills it with SIGKILL, as a crash would.
const orphanParentEnv = "ZMY_TEST_ORPHAN_PARENT_PIDFILE"

func init() {
	pidfile := os.Getenv(orphanParentEnv)
	if pidfile == "" {
		return
	}
	d, err := NewDriver(config.ClusterConfig{Name: "t", Zmyctl: []string{"sh", "-c", `echo $$ > "$0"; exec sleep 60`, pidfile},
		Nodes: []config.NodeConfig{{ID: "n1"}}}, DriverOptions{Timeout: time.Minute})
	if err != nil {
		os.Exit(3)
	}
	_, _ = d.Run(context.Background(), config.NodeConfig{ID: "n1"}, "raft", "suspend", "--force")
	os.Exit(0)
}

// A zmyctl in flight when the daemon is killed dies with it: it can never land after a
// restarted daemon read the node's state.
func TestChildDiesWithTheDaemon(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), orphanParentEnv+"="+pidfile)
	require.NoError(t, parent.Start())
	var child int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return false
		}
		child, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && child > 0
	}, 30*time.Second, 20*time.Millisecond, "the daemon started its zmyctl")
	require.NoError(t, parent.Process.Signal(syscall.SIGKILL))
	_ = parent.Wait()
	require.Eventually(t, func() bool {
		// The child is gone (or a zombie about to be reaped by init): signal 0 fails, or
		// /proc says Z.
		if err := syscall.Kill(child, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(child), "stat"))
		return err != nil || strings.Contains(string(stat), ") Z ")
	}, 10*time.Second, 20*time.Millisecond, "zmyctl (pid %d) outlived the daemon", child)
}
