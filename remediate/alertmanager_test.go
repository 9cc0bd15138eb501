package remediate

import (
	"testing"

	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// blackholeConfig is a minimal Alertmanager config: the tests only use its silences API.
const blackholeConfig = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"

// startAlertmanager runs Alertmanager on a free loopback port with a minimal config and waits
// until it is ready.
func startAlertmanager(t testing.TB) *testenv.Alertmanager {
	t.Helper()
	return testenv.StartAlertmanager(t, 0, blackholeConfig)
}
