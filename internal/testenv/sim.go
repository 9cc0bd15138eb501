package testenv

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Sim is a running `zmysim run`.
type Sim struct {
	Admin           string // the control API address, from the ready file
	ReadyFile       string // the ready file's path (JSON; internal/sim.ReadyInfo)
	ResponderConfig string // the path of the responder config the simulator wrote

	cmd    *exec.Cmd
	exited chan struct{}
	stop   sync.Once
}

// DriverEnv names the node driver (api or zmyctl) of the responder config StartSim has the
// simulator write; unset, the simulator's default (api). `make test` runs the safety tests
// once more with ZMY_TEST_DRIVER=zmyctl, so that both drivers pass them.
const DriverEnv = "ZMY_TEST_DRIVER"

// StartSim runs `bin run args… --admin-address 127.0.0.1:0 --ready-file F --responder-config C
// --log.level warn [--responder-driver $ZMY_TEST_DRIVER]` and waits up to 30s for the ready
// file. Cleanup (or Stop) sends SIGTERM, then kills after 10s; the simulator's stderr is logged
// when the test failed.
func StartSim(t testing.TB, bin string, args ...string) *Sim {
	t.Helper()
	dir := t.TempDir()
	s := &Sim{
		ReadyFile:       filepath.Join(dir, "ready.json"),
		ResponderConfig: filepath.Join(dir, "zmy-responder.yml"),
		exited:          make(chan struct{}),
	}
	argv := append([]string{"run"}, args...)
	argv = append(argv, "--admin-address", "127.0.0.1:0", "--ready-file", s.ReadyFile,
		"--responder-config", s.ResponderConfig, "--log.level", "warn")
	if d := os.Getenv(DriverEnv); d != "" {
		argv = append(argv, "--responder-driver", d)
	}
	s.cmd = exec.Command(bin, argv...)
	var stderr syncBuffer
	s.cmd.Stderr = &stderr
	require.NoError(t, s.cmd.Start())
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("zmysim stderr:\n%s", stderr.String())
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(s.ReadyFile); err == nil && len(b) > 0 {
			var info struct {
				Admin string `json:"admin"`
			}
			require.NoError(t, json.Unmarshal(b, &info), "ready file: %s", b)
			s.Admin = info.Admin
			if d := os.Getenv(DriverEnv); d != "" {
				cfg, err := os.ReadFile(s.ResponderConfig)
				require.NoError(t, err)
				require.Contains(t, string(cfg), "driver: "+d+"\n", "%s=%s: the generated config must use that driver", DriverEnv, d)
			}
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("zmysim exited before it was ready: %s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("zmysim not ready within 30s: %s", stderr.String())
		}
	}
}

// Stop ends the simulator: SIGTERM, then a kill after 10s. It may be called more than once.
func (s *Sim) Stop() {
	s.stop.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// Kill ends the simulator at once, as a crash would. It may be called more than once.
func (s *Sim) Kill() {
	s.stop.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}

// syncBuffer is a bytes.Buffer the process's stderr copier and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
