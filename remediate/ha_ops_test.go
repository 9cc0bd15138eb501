package remediate

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/testenv"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Three replicas on a real 3-member etcd. Losing one member (the etcd leader) does not stop an
// incident from reaching recovered. Losing a second one (no quorum) while the runbook waits at
// the recovery gate: every webhook answers 503, and although the network heals meanwhile —
// the runbook would arbitrate — nothing is mutated, and once the leader's lease can no longer
// be renewed no command with a runbook's actor reaches a node at all. Quorum back: it finishes,
// each mutation once per node.
func TestHAEtcdMemberAndQuorumLoss(t *testing.T) {
	s := startSim(t, "ha-etcd", 5, "")
	ec := testenv.StartEtcdCluster(t, 3)
	g := &haGroup{etcd: strings.Join(ec.Endpoints(), ","), prefix: "/ha-etcd/",
		cfg: daemonConfig(t, s, map[string]map[string]any{
			// Store calls give up sooner than the default 3s: a 503 comes back quickly.
			"storage": {"etcd": map[string]any{"request_timeout": "2s"}},
			// The gate outlives the quorum loss and the sessions' return.
			"remediation": {"gate_timeout": "2m"},
		})}
	replicas := []*daemon{g.replica(t, "r1", ""), g.replica(t, "r2", ""), g.replica(t, "r3", "")}
	waitUntil(t, 30*time.Second, "one replica leads", func() bool { return len(leadersOf(replicas, s.name)) == 1 })

	// One member lost — etcd's own leader — before the alert: the runbook runs to the end.
	first := ec.Leader(10 * time.Second)
	require.GreaterOrEqual(t, first, 0, "an etcd leader")
	ec.Members[first].Kill()
	require.GreaterOrEqual(t, ec.Leader(20*time.Second), 0, "the two remaining members elect a leader")
	from := len(s.audit(t))
	inc := haIncident(t, s, g, replicas, time.Now())
	healAndFinish(t, s, replicas, inc.ID)
	audit := s.audit(t)[from:]
	requireSOPOrderAfterCrash(t, audit, 5)
	s.requireNoViolations(t)

	// A second member lost at the gate: no quorum.
	from = len(s.audit(t))
	inc = haIncident(t, s, g, replicas, time.Now().Add(time.Second))
	waitUntil(t, 60*time.Second, "the second incident waits at the gate", func() bool {
		cur := latest(replicas[0])
		return cur != nil && cur.ID == inc.ID && cur.Step == incident.StepAwaitingRecovery
	})
	second := -1
	for i, m := range ec.Members {
		if m.Running() {
			second = i
			break
		}
	}
	ec.Members[second].Kill()
	quorumLost := time.Now()
	// The network converges: with its journal, the runbook would now arbitrate and resume.
	s.fault(t, "heal")

	var wg sync.WaitGroup
	codes := make([]int, len(replicas))
	for i, d := range replicas {
		wg.Go(func() {
			codes[i], _, _ = d.tryWebhook(s.name, "firing", "am-0", inc.OpenedAt)
		})
	}
	wg.Wait()
	for i, c := range codes {
		require.Equal(t, http.StatusServiceUnavailable, c, "replica r%d's webhook without an etcd quorum", i+1)
		require.Equal(t, http.StatusServiceUnavailable, replicas[i].status(t, "/-/ready"), "r%d ready without an etcd quorum", i+1)
	}
	// Past the lease, every leader is stale: watch the nodes for a while longer.
	ttl, err := time.ParseDuration(haLeaseTTL)
	require.NoError(t, err)
	silentFrom := quorumLost.Add(ttl + time.Second)
	waitUntil(t, 30*time.Second, "the lease and some more to pass", func() bool { return time.Since(silentFrom) > 4*time.Second })

	ec.Members[second].Start() // quorum back
	quorumBack := time.Now()
	for _, e := range s.audit(t)[from:] {
		if e.Time.After(quorumLost) && e.Time.Before(quorumBack) {
			require.False(t, isMutating(e), "%v on %s at %s, with no etcd quorum", e.Args, e.Node, e.Time.Format(time.RFC3339Nano))
		}
		if _, ok := zmy.ParseActor(e.Actor); ok && e.Time.After(silentFrom) && e.Time.Before(quorumBack) {
			t.Fatalf("%s sent %v to %s at %s, %s after the quorum was lost: a stale leader commanded",
				e.Actor, e.Args, e.Node, e.Time.Format(time.RFC3339Nano), e.Time.Sub(quorumLost).Round(time.Millisecond))
		}
	}
	inc = waitClosedOnAny(t, replicas, inc.ID, 90*time.Second)
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	audit = s.audit(t)[from:]
	requireSOPOrderAfterCrash(t, audit, 5)
	recordedRecovery(t, audit, inc)
	s.requireNoViolations(t)
}

// Two clusters, three replicas of the daemon: each cluster has exactly one leader and the two
// leaders are different replicas. Killing one leader moves only its own cluster: the other
// cluster's leader sees no change.
func TestHATwoClustersThreeReplicas(t *testing.T) {
	a, b := startSim(t, "ha-two-a", 3, ""), startSim(t, "ha-two-b", 3, "")
	g := &haGroup{etcd: testenv.StartEtcd(t), prefix: "/ha-two/", cfg: mergedConfig(t, a, b)}
	replicas := map[string]*daemon{"r1": g.replica(t, "r1", ""), "r2": g.replica(t, "r2", ""), "r3": g.replica(t, "r3", "")}
	all := func() []*daemon { return []*daemon{replicas["r1"], replicas["r2"], replicas["r3"]} }

	spread := func() (la, lb *daemon, ok bool) {
		ra, rb := leadersOf(all(), a.name), leadersOf(all(), b.name)
		if len(ra) != 1 || len(rb) != 1 || ra[0] == rb[0] {
			return nil, nil, false
		}
		return ra[0], rb[0], true
	}
	var la, lb *daemon
	waitUntil(t, 30*time.Second, "one leader per cluster, on two replicas", func() (ok bool) {
		la, lb, ok = spread()
		return ok
	})
	changesA := la.metric(t, "zmy_responder_leader_changes_total", a.name)

	lb.kill()
	waitUntil(t, 30*time.Second, "a survivor leads the dead leader's cluster, the other cluster on another replica",
		func() bool {
			na, nb, ok := spread()
			return ok && na == la && nb != lb
		})
	require.Equal(t, changesA, la.metric(t, "zmy_responder_leader_changes_total", a.name),
		"%s's leader kept it while the other cluster failed over", a.name)
}

// haIncident partitions the cluster, delivers the alert to every replica (retrying a 503 as
// Alertmanager would) and returns the incident they opened.
func haIncident(t *testing.T, s *simCluster, g *haGroup, replicas []*daemon, startsAt time.Time) *incident.Incident {
	t.Helper()
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	waitSimConfirmed(t, s, g.cfg)
	for _, d := range replicas {
		waitUntil(t, 30*time.Second, "the webhook answered 200", func() bool {
			code, _, err := d.tryWebhook(s.name, "firing", "am-0", startsAt)
			return err == nil && code == http.StatusOK
		})
	}
	var inc *incident.Incident
	waitUntil(t, 10*time.Second, "the incident", func() bool {
		inc = latest(replicas[0])
		return inc != nil && inc.Open()
	})
	return inc
}

// healAndFinish heals the network at the gate and waits until the incident is recovered.
func healAndFinish(t *testing.T, s *simCluster, replicas []*daemon, id string) {
	t.Helper()
	healed := false
	var inc *incident.Incident
	waitUntil(t, 90*time.Second, id+" closed", func() bool {
		for _, d := range replicas {
			if inc = latest(d); inc != nil {
				break
			}
		}
		if inc != nil && inc.Step == incident.StepAwaitingRecovery && !healed {
			s.fault(t, "heal")
			healed = true
		}
		return inc != nil && inc.ID == id && !inc.Open()
	})
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
}

// waitClosedOnAny waits until a replica answers that the incident is closed.
func waitClosedOnAny(t *testing.T, replicas []*daemon, id string, within time.Duration) *incident.Incident {
	t.Helper()
	var inc *incident.Incident
	waitUntil(t, within, id+" closed", func() bool {
		for _, d := range replicas {
			if cur := latest(d); cur != nil && cur.ID == id {
				inc = cur
				return !cur.Open()
			}
		}
		return false
	})
	return inc
}

// leadersOf are the daemons that say they lead the cluster.
func leadersOf(replicas []*daemon, cluster string) []*daemon {
	var out []*daemon
	for _, d := range replicas {
		if d.leads(cluster) {
			out = append(out, d)
		}
	}
	return out
}

// status is the HTTP status of a GET.
func (d *daemon) status(t *testing.T, path string) int {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(d.url + path)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// metric is the value of name{cluster="…"} on the daemon's /metrics.
func (d *daemon) metric(t *testing.T, name, cluster string) float64 {
	t.Helper()
	resp, err := http.Get(d.url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	prefix := fmt.Sprintf("%s{cluster=%q} ", name, cluster)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("no %s on %s", prefix, d.url)
	return 0
}

// mergedConfig is daemonConfig for the first cluster with the other clusters appended.
func mergedConfig(t *testing.T, first *simCluster, others ...*simCluster) string {
	t.Helper()
	path := daemonConfig(t, first, nil)
	doc := readYAML(t, path)
	clusters, _ := doc["clusters"].([]any)
	for _, o := range others {
		more, _ := readYAML(t, o.cfgPath)["clusters"].([]any)
		clusters = append(clusters, more...)
	}
	doc["clusters"] = clusters
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	path = filepath.Join(t.TempDir(), "zmy-responder.yml")
	require.NoError(t, os.WriteFile(path, out, 0o644))
	return path
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	return doc
}
