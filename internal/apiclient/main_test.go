package apiclient_test

import (
	"os"
	"testing"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// binDir holds zmysim, zmysimctl and zmy-responder, built once for the package's tests.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, func(dir string) { binDir = dir }, "./cmd/zmysim", "./cmd/zmysimctl", "./cmd/zmy-responder"))
}

// startStack runs the daemon on a simulated 5-node cluster "demo", with short runbook intervals
// and a second remediation allowed right after the first; patch edits the config further.
func startStack(t *testing.T, alertmanager bool, patch func(map[string]any)) *testenv.Stack {
	return testenv.StartStack(t, binDir, testenv.StackOptions{Alertmanager: alertmanager, Config: func(cfg map[string]any) {
		cfg["remediation"].(map[string]any)["anti_flap"] = "1ms"
		if patch != nil {
			patch(cfg)
		}
	}})
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
