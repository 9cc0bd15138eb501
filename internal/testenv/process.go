package testenv

import (
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"
)

// StartUntilReady starts cmd (a server for one test: its output is kept and logged when the
// test failed, Cleanup kills it) and polls readyURL until it answers 200, up to timeout. A
// server that exits first, or is not ready in time, is an error carrying its log. exited is
// closed once the process has ended and been waited for (a test that kills it waits on it).
func StartUntilReady(t testing.TB, name string, cmd *exec.Cmd, readyURL string, timeout time.Duration) (exited <-chan struct{}, err error) {
	t.Helper()
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s log:\n%s", name, log.String())
		}
	})

	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-done:
			return nil, fmt.Errorf("%s exited during start: %v\n%s", name, cmd.ProcessState, log.String())
		default:
		}
		resp, err := http.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return done, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not ready at %s after %s: %v", name, readyURL, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// onFreePort runs start on a free port, and on up to two more if it fails: a free port can be
// taken by another process between FreePort and the server's bind (a busy CI machine runs many
// tests at once), and then the server exits at once.
func onFreePort[T any](t testing.TB, name string, start func(port int) (T, error)) T {
	t.Helper()
	var err error
	for range 3 {
		var v T
		if v, err = start(FreePort(t)); err == nil {
			return v
		}
		t.Logf("%s did not start, trying another port: %v", name, err)
	}
	t.Fatal(err)
	var zero T
	return zero
}
