// Package testenv owns the harness that several packages' tests share: building this module's
// binaries, finding Debian's tools, free loopback ports, an embedded etcd and a running
// simulator. It is imported by tests only.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Build runs `go build -o dir/ pkgs…` from the module root, so pkgs are module-relative
// (./cmd/zmysim) and each binary lands in dir under its command's name. A build that hangs
// is killed after 5 minutes rather than holding the test binary until go test's own timeout.
func Build(dir string, pkgs ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("find module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return fmt.Errorf("find module root: not inside a module")
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", dir + string(os.PathSeparator)}, pkgs...)...)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// Main is a package's TestMain: it builds pkgs (module paths such as "./cmd/zmysim") into a fresh
// temporary directory, hands the directory to ready, runs the tests, removes the directory and
// returns the exit code for os.Exit. A failed build fails the package with the build's output.
//
//	func TestMain(m *testing.M) {
//		os.Exit(testenv.Main(m, func(dir string) { binDir = dir }, "./cmd/zmysim", "./cmd/zmysimctl"))
//	}
func Main(m *testing.M, ready func(dir string), pkgs ...string) int {
	dir, err := os.MkdirTemp("", "zmy-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv: temp dir for binaries:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := Build(dir, pkgs...); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	ready(dir)
	return m.Run()
}

// Binary returns the path of the first of names on PATH, a tool from the Debian package of the
// same name as names[0] that `make test` installs. Without it the test is skipped on a
// developer machine and fails under CI.
func Binary(t testing.TB, names ...string) string {
	t.Helper()
	return Tool(t, names[0], names...)
}

// Tool is Binary for a tool whose Debian package has another name (promtool is in prometheus).
func Tool(t testing.TB, pkg string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (CI is set: `make test` must install Debian's %s package)", names[0], pkg)
	}
	t.Skipf("%s is not installed; `make test` installs it (apt-get install %s)", names[0], pkg)
	return ""
}

// FreePort returns a loopback TCP port that is free right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
