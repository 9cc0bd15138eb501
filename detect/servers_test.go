package detect

import (
	"os"
	"os/exec"
	"testing"
)

// requireBinary finds a Debian-packaged server a test needs. Without it the test is skipped,
// saying why, unless CI is set: `make test` installs the packages, so under CI a missing binary
// is a failure, not a skip.
func requireBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (Debian package %s) and CI is set: %v", name, pkg, err)
	}
	t.Skipf("%s not found: install the Debian package %s (make test does) to run this test", name, pkg)
	return ""
}
