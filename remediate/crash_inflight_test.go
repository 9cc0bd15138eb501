package remediate

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/detect"
	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/sim"
)

// The daemon is killed (SIGKILL, no failpoint) while one node is still working on a mutating
// command: suspend, snapshot save, recover, resume. Its zmyctl dies with it, the node drops the
// command it had not applied, and the restarted daemon asks the nodes before sending anything
// again: every mutation is applied exactly once per node (one recover), the incident records the
// recover the nodes really applied, and no invariant breaks.
func TestCrashWithAMutationInFlight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		node  string
		words string // the command the node is slow to apply
	}{
		{"suspend", "n4", "raft suspend"},
		{"snapshot", "n2", "snapshot save"},
		{"recover", "n1", "quorum recover"},
		{"resume", "n3", "raft resume"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startSim(t, "inflight-"+tc.name, 5, "")
			cfgPath := daemonConfig(t, s, nil)
			cfg, err := config.Load(cfgPath)
			require.NoError(t, err)
			storage := filepath.Join(t.TempDir(), "data")

			s.fault(t, "partition", "n1,n2,n3/n4,n5")
			waitProbeConfirmed(t, detect.NewProber(cfg, detect.Options{}), s.name)
			// Slow enough that the kill comes first, whatever the load: the node applies the
			// command only if its caller is still there after a minute.
			s.fault(t, append([]string{"slow", tc.node, "1m"}, strings.Fields(tc.words)...)...)

			d := startDaemon(t, cfgPath, storage, "")
			d.webhook(t, s.name, "firing", "am-0", time.Now())
			healed := false
			waitUntil(t, 45*time.Second, tc.words+" in flight on "+tc.node, func() bool {
				if inc := latest(d); inc != nil && inc.Step == incident.StepAwaitingRecovery && !healed {
					s.fault(t, "heal")
					healed = true
				}
				return slices.Contains(inFlight(t, s, tc.node), tc.words)
			})
			d.kill()
			s.fault(t, "slow", tc.node, "0s")
			waitUntil(t, 10*time.Second, "the node dropped the abandoned command", func() bool {
				return !slices.Contains(inFlight(t, s, tc.node), tc.words)
			})

			d = startDaemon(t, cfgPath, storage, "")
			var inc *incident.Incident
			waitUntil(t, 60*time.Second, "the incident recovered after the restart", func() bool {
				inc = latest(d)
				if inc != nil && inc.Step == incident.StepAwaitingRecovery && !healed {
					s.fault(t, "heal")
					healed = true
				}
				return inc != nil && !inc.Open()
			})
			require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
			d.kill()
			audit := s.audit(t)
			requireSOPOrderAfterCrash(t, audit, 5)
			recordedRecovery(t, audit, inc)
			abandoned := 0
			for _, e := range audit {
				if e.Node == tc.node && e.Exit == sim.ExitNoAnswer && strings.HasPrefix(strings.Join(commandWords(e), " "), tc.words) {
					abandoned++
				}
			}
			require.Equal(t, 1, abandoned, "the command in flight at the kill was dropped, not applied")
			s.requireNoViolations(t)
		})
	}
}

// inFlight is what the node has received and not answered yet.
func inFlight(t *testing.T, s *simCluster, node string) []string {
	t.Helper()
	out, err := s.zmysim(t, "nodes")
	require.NoError(t, err)
	var nodes []sim.NodeInfo
	require.NoError(t, json.Unmarshal(out, &nodes), "%s", out)
	for _, n := range nodes {
		if n.ID == node {
			return n.InFlight
		}
	}
	t.Fatalf("no node %s", node)
	return nil
}

// waitUntil polls cond until it holds or within passes.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
