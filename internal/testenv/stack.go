package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/stack"
)

// Stack is a simulated cluster with the real zmy-responder on it (internal/stack without
// Prometheus), for one test.
type Stack struct {
	*stack.Stack
	// AlertmanagerURL is the Alertmanager silences go to and alerts say they came from, when
	// StackOptions.Alertmanager is set.
	AlertmanagerURL string
}

// StackOptions say what StartStack runs.
type StackOptions struct {
	Cluster      string // default "demo"
	Nodes        int    // default 5
	Alertmanager bool   // a real Alertmanager for silences (skipped or failed as Binary says without it)
	// Config patches the responder's configuration (YAML maps) after the simulator wrote it.
	Config func(cfg map[string]any)
}

// StartStack builds nothing: binDir must hold zmysim (and zmysimctl) and zmy-responder. It
// starts the simulator and the daemon on free loopback ports, waits until the daemon is ready
// (at most 60s), and stops both when the test ends, logging the daemon's log tail if it failed.
func StartStack(t testing.TB, binDir string, o StackOptions) *Stack {
	t.Helper()
	s := &Stack{}
	if o.Alertmanager {
		am := StartAlertmanager(t, 0, "route: {receiver: humans}\nreceivers: [{name: humans}]\n")
		s.AlertmanagerURL = am.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	s.Stack, err = stack.Start(ctx, stack.Options{
		Dir: t.TempDir(), BinDir: binDir, Cluster: o.Cluster, Nodes: o.Nodes,
		ResponderConfig: func(cfg map[string]any) {
			if s.AlertmanagerURL != "" {
				cfg["alertmanager"] = map[string]any{"url": s.AlertmanagerURL, "extend_every": "10s", "silence_duration": "2m"}
			}
			if o.Config != nil {
				o.Config(cfg)
			}
		},
	})
	if s.Stack != nil {
		t.Cleanup(func() {
			s.Close()
			if t.Failed() && s.Responder != nil {
				t.Logf("zmy-responder log (tail):\n%s", s.Responder.Tail(8000))
			}
		})
	}
	require.NoError(t, err)
	return s
}

// Alert posts one firing ZMY_Quorum_Down for the cluster to the daemon's webhook, as the stack's
// Alertmanager (or one at http://alertmanager.test) would, and requires a 200.
func (s *Stack) Alert(t testing.TB, cluster string) {
	t.Helper()
	sender := s.AlertmanagerURL
	if sender == "" {
		sender = "http://alertmanager.test"
	}
	labels := map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": cluster, "job": "zmy", "severity": "critical"}
	body, err := json.Marshal(map[string]any{
		"version": "4", "groupKey": fmt.Sprintf(`{}:{alertname="ZMY_Quorum_Down", cluster=%q}`, cluster),
		"status": "firing", "receiver": "zmy-responder", "groupLabels": labels, "commonLabels": labels,
		"commonAnnotations": map[string]string{}, "externalURL": sender, "truncatedAlerts": 0,
		"alerts": []map[string]any{{"status": "firing", "labels": labels,
			"annotations": map[string]string{"summary": "ZMY quorum lost on " + cluster},
			"startsAt":    time.Now().UTC().Format(time.RFC3339Nano), "endsAt": "0001-01-01T00:00:00Z",
			"generatorURL": "http://prometheus.test/graph", "fingerprint": "0a1b2c3d4e5f6789"}},
	})
	require.NoError(t, err)
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post(s.ResponderURL+"/webhook", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "webhook: %s", answer)
}

// Inject is Fault for a test: Inject(t, "partition", "n1,n2,n3/n4,n5"), Inject(t, "heal").
func (s *Stack) Inject(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.Fault(ctx, args...))
}

// Partition splits the cluster (e.g. "n1,n2,n3/n4,n5") and waits, up to 30s, until some shard's
// applied index differs across nodes by more than spread: what the probes need to see before a
// verdict is confirmed, and what Prometheus' `for:` waits out before the alert fires.
func (s *Stack) Partition(t testing.TB, groups string, spread uint64) {
	t.Helper()
	s.Inject(t, "partition", groups)
	Eventually(t, 30*time.Second, "shards diverge after the partition", func() (bool, string) {
		// The simulator's control API (internal/sim's tests use this package: no import of it).
		var nodes []struct {
			Shards map[string]uint64 `json:"shards"`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stack.GetJSON(ctx, "http://"+s.SimAdmin+"/api/v1/nodes", &nodes); err != nil {
			return false, err.Error()
		}
		lo, hi := map[string]uint64{}, map[string]uint64{}
		for _, n := range nodes {
			for shard, idx := range n.Shards {
				if l, ok := lo[shard]; !ok || idx < l {
					lo[shard] = idx
				}
				hi[shard] = max(hi[shard], idx)
			}
		}
		for shard := range hi {
			if hi[shard]-lo[shard] > spread {
				return true, ""
			}
		}
		return false, fmt.Sprintf("shards %v … %v", lo, hi)
	})
}

// RequireNoViolations fails the test if the simulator's invariants caught a wrong runbook.
func (s *Stack) RequireNoViolations(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Zmysim(ctx, "invariants")
	require.NoError(t, err, "invariants: %s", out)
}

// Eventually polls cond every 100ms until it holds or within passes; what, formatted with
// the last note cond returned, says what was awaited.
func Eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, note := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %s)", what, within, note)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
