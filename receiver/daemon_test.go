package receiver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// The tests in this file run the real bin/zmy-responder, built once per test binary.

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// responderBinary builds cmd/zmy-responder into a temporary directory.
func responderBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "zmy-responder-test-bin-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "zmy-responder")
		build.err = testenv.Build(build.dir, "./cmd/zmy-responder")
	})
	require.NoError(t, build.err)
	return build.path
}

// daemon is a running zmy-responder process.
type daemon struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{}

	mu  sync.Mutex
	log strings.Builder
}

var readyLine = regexp.MustCompile(`msg="zmy-responder ready" http=(\S+)`)

// startDaemon starts the binary (prefix, e.g. prlimit, runs it) with loopback listeners on
// free ports and waits for its ready log line.
func startDaemon(t *testing.T, prefix []string, args ...string) *daemon {
	t.Helper()
	argv := append(append(append([]string{}, prefix...), responderBinary(t)),
		"--web.listen-address=127.0.0.1:0", "--grpc.listen-address=127.0.0.1:0")
	argv = append(argv, args...)
	d := &daemon{cmd: exec.Command(argv[0], argv[1:]...), exited: make(chan struct{})}
	stderr, err := d.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, d.cmd.Start())
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.log.WriteString(line + "\n")
			d.mu.Unlock()
			if m := readyLine.FindStringSubmatch(line); m != nil {
				select {
				case ready <- "http://" + m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("zmy-responder log:\n%s", d.logs())
		}
	})
	select {
	case d.url = <-ready:
		return d
	case <-d.exited:
		t.Fatalf("zmy-responder exited before ready (%v):\n%s", d.cmd.ProcessState, d.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("zmy-responder not ready after 30s:\n%s", d.logs())
	}
	return nil
}

func (d *daemon) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

func (d *daemon) env() *testEnv { return &testEnv{url: d.url} }

// kill is kill -9.
func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// signal sends sig and, for SIGTERM, waits for the exit.
func (d *daemon) terminate(t *testing.T) {
	t.Helper()
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("zmy-responder did not exit within 30s of SIGTERM:\n%s", d.logs())
	}
}

// TestExampleConfig: deploy/zmy-responder.example.yml is valid and the daemon starts with it as
// is; SIGTERM stops it cleanly.
func TestExampleConfig(t *testing.T) {
	example, err := filepath.Abs("../deploy/zmy-responder.example.yml")
	require.NoError(t, err)
	out, err := exec.Command(responderBinary(t), "--config.file="+example, "--config.check",
		"--web.listen-address=127.0.0.1:9095").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "OK\n", string(out))
	// Without the flag, the check says what the default address would get.
	out, err = exec.Command(responderBinary(t), "--config.file="+example, "--config.check").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "WARNING: with the default --web.listen-address=:9095 the daemon would not start: refusing to serve")

	d := startDaemon(t, nil, "--config.file="+example, "--storage.path="+t.TempDir())
	code, _ := d.env().doErr("GET", "/-/ready")
	require.Equal(t, 200, code)
	d.terminate(t)
	require.Equal(t, 0, d.cmd.ProcessState.ExitCode(), d.logs())
	require.Contains(t, d.logs(), "journal closed")

	// With the default listen address (every interface) the unauthenticated example is refused.
	out, err = exec.Command(responderBinary(t), "--config.file="+example, "--storage.path="+t.TempDir(),
		"--web.listen-address=:0").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "refusing to serve mutating endpoints without credentials")
}

func TestConfigCheckReportsErrors(t *testing.T) {
	check := func(content string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(responderBinary(t), append([]string{"--config.file=" + configFile(t, content), "--config.check"}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := check("clusters:\n  - name: east\n    zmyctl: [zmyctl]\n    nodez: []\n")
	require.Equal(t, 1, code)
	require.Contains(t, out, `line 4: unknown field "nodez" in clusters[0]`)

	// A wrong type names its key; a syntax error its line.
	out, code = check("webhook:\n  cluster_labels: [cluster]\n  max_body_bytes: one meg\n")
	require.Equal(t, 1, code)
	require.Contains(t, out, `line 3: webhook.max_body_bytes: want an integer, got "one meg"`)
	out, code = check("webhook:\n  max_body_bytes: 10\n remediation:\n  dry_run: true\n")
	require.Equal(t, 1, code)
	require.Contains(t, out, `parse YAML: line 3: did not find expected key: " remediation:"`)

	// No clusters: valid, but every alert would be ignored, so it is said loudly.
	for _, empty := range []string{"", "clusters: []\n"} {
		out, code = check(empty, "--web.listen-address=127.0.0.1:9095")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "WARNING: no clusters configured: every alert will be journaled as unknown_cluster and nothing will be remediated")
	}

	// With the listen flags given, the refusal the daemon would give at start.
	out, code = check(testClusters, "--web.listen-address=0.0.0.0:9095")
	require.Equal(t, 1, code)
	require.Contains(t, out, "refusing to serve mutating endpoints without credentials on 0.0.0.0:9095")
	out, code = check("api: {allow_unauthenticated_mutations: true}\n"+testClusters, "--web.listen-address=0.0.0.0:9095")
	require.Equal(t, 0, code, out)
	require.Equal(t, "OK\n", out)
}

// TestSIGHUPReload: a bad file on SIGHUP is refused (metric 0, old config kept), a good one taken.
func TestSIGHUPReload(t *testing.T) {
	cfg := configFile(t, testClusters)
	d := startDaemon(t, nil, "--config.file="+cfg, "--storage.path="+t.TempDir())
	reloadOK := func() string {
		t.Helper()
		_, body := d.env().do(t, "GET", "/metrics", nil)
		m := regexp.MustCompile(`(?m)^zmy_responder_config_last_reload_successful (\S+)$`).FindStringSubmatch(string(body))
		require.NotNil(t, m, "reload metric missing")
		return m[1]
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for reloadOK() != want {
			require.True(t, time.Now().Before(deadline), "config_last_reload_successful never became %s:\n%s", want, d.logs())
			time.Sleep(20 * time.Millisecond)
		}
	}
	require.Equal(t, "1", reloadOK())
	_, body := d.env().do(t, "GET", "/metrics", nil)
	require.Contains(t, string(body), "zmy_responder_build_info{")
	writeFile(t, filepath.Dir(cfg), filepath.Base(cfg), "clusters: [{name: east}]\n")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	waitFor("0")
	require.Contains(t, d.logs(), "configuration reload failed; keeping the previous configuration")
	writeFile(t, filepath.Dir(cfg), filepath.Base(cfg), testClusters)
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
	waitFor("1")
	d.terminate(t)
}

// TestSecondDaemonOnSameStorage: a second daemon on the first one's --storage.path exits at
// once naming the first one's pid, instead of failing with bbolt's bare "timeout".
func TestSecondDaemonOnSameStorage(t *testing.T) {
	cfg := configFile(t, testClusters)
	storage := t.TempDir()
	first := startDaemon(t, nil, "--config.file="+cfg, "--storage.path="+storage)
	out, err := exec.Command(responderBinary(t), "--config.file="+cfg, "--storage.path="+storage,
		"--web.listen-address=127.0.0.1:0", "--grpc.listen-address=127.0.0.1:0").CombinedOutput()
	require.Error(t, err, "%s", out)
	require.Contains(t, string(out), fmt.Sprintf("journal is locked by another process (pid %d)", first.cmd.Process.Pid))
	require.NotContains(t, string(out), "timeout")
	code, _ := first.env().doErr("GET", "/-/ready")
	require.Equal(t, 200, code, "the first daemon is untouched")
}
