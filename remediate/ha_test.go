package remediate

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/detect"
	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/sim"
	"github.com/zmyorg/zmy-responder/internal/testenv"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// haLeaseTTL is the replicas' lease in these tests: short, so a failover is quick.
const haLeaseTTL = "3s"

// haGroup is replicas of the real daemon sharing one etcd store.
type haGroup struct {
	etcd, cfg, prefix string
}

func newHAGroup(t *testing.T, s *simCluster) *haGroup {
	t.Helper()
	return &haGroup{etcd: testenv.StartEtcd(t), cfg: daemonConfig(t, s, nil), prefix: "/ha-" + s.name + "/"}
}

// replica starts one replica; failpoint arms the test SIGKILL.
func (g *haGroup) replica(t *testing.T, name, failpoint string) *daemon {
	t.Helper()
	return startDaemonArgs(t, failpoint, "--config.file="+g.cfg, "--storage.backend=etcd",
		"--storage.etcd.endpoints="+g.etcd, "--storage.etcd.prefix="+g.prefix, "--ha.replica="+name,
		"--ha.lease-ttl="+haLeaseTTL)
}

// leads reports whether the daemon says it leads the cluster (zmy_responder_leader).
func (d *daemon) leads(cluster string) bool {
	select {
	case <-d.exited:
		return false
	default:
	}
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	want := fmt.Sprintf(`zmy_responder_leader{cluster=%q} 1`, cluster)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if sc.Text() == want {
			return true
		}
	}
	return false
}

// runbookEntries are the audited commands a runbook sent (they carry ZMY_ACTOR), by replica.
func runbookEntries(audit []sim.AuditEntry) map[string][]sim.AuditEntry {
	out := map[string][]sim.AuditEntry{}
	for _, e := range audit {
		if a, ok := zmy.ParseActor(e.Actor); ok {
			out[a.Replica] = append(out[a.Replica], e)
		}
	}
	return out
}

// Three replicas share the journal in etcd and all get the alert, three times each: exactly one
// runbook runs (one replica commands the nodes), each mutation once per node, no violation.
func TestHAOneRunbookForManyDeliveries(t *testing.T) {
	s := startSim(t, "ha-one", 5, "")
	g := newHAGroup(t, s)
	replicas := []*daemon{g.replica(t, "r1", ""), g.replica(t, "r2", ""), g.replica(t, "r3", "")}
	waitUntil(t, 20*time.Second, "one replica leads", func() bool {
		n := 0
		for _, d := range replicas {
			if d.leads(s.name) {
				n++
			}
		}
		return n == 1
	})
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	waitSimConfirmed(t, s, g.cfg)
	startsAt := time.Now()
	for round := range 3 {
		for i, d := range replicas {
			d.webhook(t, s.name, "firing", fmt.Sprintf("am-%d", (i+round)%3), startsAt)
		}
	}
	var inc *incident.Incident
	healed := false
	waitUntil(t, 60*time.Second, "recovered", func() bool {
		inc = latest(replicas[1]) // any replica answers the API
		if inc != nil && inc.Step == incident.StepAwaitingRecovery && !healed {
			s.fault(t, "heal")
			healed = true
		}
		return inc != nil && !inc.Open()
	})
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	for _, d := range replicas {
		require.Len(t, d.incidents(t), 1, "one incident, seen alike by every replica")
	}
	audit := s.audit(t)
	requireSOPOrderAfterCrash(t, audit, 5)
	require.Len(t, runbookEntries(audit), 1, "one replica commanded the nodes")
	s.requireNoViolations(t)
}

// The leader is killed (SIGKILL) in each state of the runbook; another replica takes the
// cluster within the lease, resumes the incident from the shared journal, asks the nodes before
// acting, and finishes it: each mutation once per node, one recover, no violation.
func TestHAFailoverAtEachStep(t *testing.T) {
	for g, points := range [][]string{
		{"enter:confirming", "containing:mid", "awaiting_recovery:polled"},
		{"snapshotting:saved", "arbitrating:recovered", "resuming:mid"},
	} {
		t.Run(fmt.Sprintf("group%d", g), func(t *testing.T) {
			t.Parallel()
			s := startSim(t, fmt.Sprintf("ha-fail%d", g), 5, "")
			hg := newHAGroup(t, s)
			followers := []*daemon{hg.replica(t, "r2", ""), hg.replica(t, "r3", "")}
			for i, point := range points {
				t.Run(strings.ReplaceAll(point, ":", "_"), func(t *testing.T) {
					from := len(s.audit(t))
					// r1 is the cluster's preferred replica (the first of the live ones, sorted):
					// once it is up, the cluster is handed to it.
					leader := hg.replica(t, "r1", point)
					waitUntil(t, 30*time.Second, "r1 leads", func() bool { return leader.leads(s.name) })
					s.fault(t, "partition", "n1,n2,n3/n4,n5")
					waitSimConfirmed(t, s, hg.cfg)
					startsAt := time.Now().Add(time.Duration(i) * time.Second)
					for _, d := range append([]*daemon{leader}, followers...) {
						_, _, _ = d.tryWebhook(s.name, "firing", "am-0", startsAt)
					}
					healed := false
					heal := func(inc *incident.Incident) {
						if inc != nil && inc.Step == incident.StepAwaitingRecovery && !healed {
							s.fault(t, "heal")
							healed = true
						}
					}
					waitUntil(t, 60*time.Second, "the leader dies at "+point, func() bool {
						heal(latest(followers[0]))
						select {
						case <-leader.exited:
							return true
						default:
							return false
						}
					})
					require.True(t, leader.killedBySIGKILL(t, time.Second), "r1 did not die at %s", point)
					var inc *incident.Incident
					deadline := time.Now().Add(60 * time.Second)
					for {
						inc = latest(followers[0])
						heal(inc)
						if inc != nil && !inc.Open() && inc.OpenedAt.After(startsAt.Add(-time.Minute)) {
							break
						}
						if time.Now().After(deadline) {
							msg := "no incident"
							if inc != nil {
								msg = fmt.Sprintf("%s at %s (%s %s); leaders: r2 %v, r3 %v; timeline tail %v", inc.ID, inc.Step,
									inc.Outcome, inc.Reason, followers[0].leads(s.name), followers[1].leads(s.name),
									inc.Timeline[max(0, len(inc.Timeline)-3):])
							}
							t.Fatalf("no other replica finished after the leader died at %s: %s", point, msg)
						}
						time.Sleep(50 * time.Millisecond)
					}
					require.Equal(t, incident.OutcomeRecovered, inc.Outcome, "%s: %s", point, inc.Reason)
					audit := s.audit(t)[from:]
					requireSOPOrderAfterCrash(t, audit, 5)
					recordedRecovery(t, audit, inc)
					s.requireNoViolations(t)
				})
			}
		})
	}
}

// The leader freezes (SIGSTOP) in the middle of containment for longer than its lease; another
// replica takes over and finishes; when the old leader wakes it sends nothing more: no command
// with its actor reaches a node after the new leader's first one.
func TestHAFrozenLeaderIsFenced(t *testing.T) {
	s := startSim(t, "ha-stop", 5, "")
	g := newHAGroup(t, s)
	r1 := g.replica(t, "r1", "")
	waitUntil(t, 30*time.Second, "r1 leads", func() bool { return r1.leads(s.name) })
	r2 := g.replica(t, "r2", "")
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	waitSimConfirmed(t, s, g.cfg)
	// Containment's verification of n5 answers slowly: r1 is frozen between its suspends and
	// the end of the step.
	s.fault(t, "slow", "n5", "2s", "raft", "state")
	r1.webhook(t, s.name, "firing", "am-0", time.Now())
	waitUntil(t, 30*time.Second, "r1 suspending", func() bool {
		for _, e := range runbookEntries(s.audit(t))["r1"] {
			if isCmd(e, "raft", "suspend") {
				return true
			}
		}
		return false
	})
	require.NoError(t, r1.cmd.Process.Signal(syscall.SIGSTOP))
	s.fault(t, "slow", "n5", "0s")
	waitUntil(t, 30*time.Second, "r2 takes over and reaches the gate", func() bool {
		inc := latest(r2)
		return r2.leads(s.name) && inc != nil && inc.Step == incident.StepAwaitingRecovery
	})
	require.NoError(t, r1.cmd.Process.Signal(syscall.SIGCONT))
	s.fault(t, "heal")
	var inc *incident.Incident
	waitUntil(t, 60*time.Second, "recovered", func() bool {
		inc = latest(r2)
		return inc != nil && !inc.Open()
	})
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)

	by := runbookEntries(s.audit(t))
	require.NotEmpty(t, by["r2"])
	firstNew := by["r2"][0].Time
	for _, e := range by["r1"] {
		require.False(t, e.Time.After(firstNew), "r1 sent %v to %s at %s, after r2's first command at %s",
			e.Args, e.Node, e.Time.Format(time.RFC3339Nano), firstNew.Format(time.RFC3339Nano))
	}
	s.requireNoViolations(t)
}

// Decisions reach the leader through the shared journal: an approval posted to a follower opens
// the leader's gate; a pause set on a follower stops every replica from starting a remediation.
func TestHADecisionsOnAFollower(t *testing.T) {
	s := startSim(t, "ha-fol", 5, "")
	g := newHAGroup(t, s)
	g.cfg = daemonConfig(t, s, map[string]map[string]any{"remediation": {"require_approval": true}})
	r1 := g.replica(t, "r1", "")
	waitUntil(t, 30*time.Second, "r1 leads", func() bool { return r1.leads(s.name) })
	r2 := g.replica(t, "r2", "")

	// Paused on the follower: the leader refuses the alert.
	code, body := r2.post(t, "/api/v1/clusters/"+s.name+"/pause", map[string]string{"by": "bob", "reason": "maintenance"})
	require.Equal(t, http.StatusOK, code, string(body))
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	waitSimConfirmed(t, s, g.cfg)
	r1.webhook(t, s.name, "firing", "am-0", time.Now())
	var inc *incident.Incident
	waitUntil(t, 30*time.Second, "refused", func() bool { inc = latest(r1); return inc != nil && !inc.Open() })
	require.Equal(t, incident.OutcomePaused, inc.Outcome, inc.Reason)
	require.Zero(t, countMutating(s.audit(t)))

	// Unpaused on the follower: the leader re-evaluates; approved on the follower: it recovers.
	code, body = r2.post(t, "/api/v1/clusters/"+s.name+"/unpause", map[string]string{"by": "bob", "reason": "done"})
	require.Equal(t, http.StatusOK, code, string(body))
	waitUntil(t, 40*time.Second, "the re-evaluation at the gate", func() bool {
		inc = latest(r1)
		return inc != nil && inc.RetryOf != "" && inc.Step == incident.StepAwaitingRecovery
	})
	s.fault(t, "heal")
	code, body = r2.post(t, "/api/v1/incidents/"+inc.ID+"/approve", map[string]string{"by": "alice", "reason": "network team"})
	require.Equal(t, http.StatusOK, code, string(body))
	waitUntil(t, 40*time.Second, "recovered", func() bool { inc = r1.incident(t, inc.ID); return !inc.Open() })
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	require.Equal(t, []string{"r1"}, slices.Sorted(func(yield func(string) bool) {
		for k := range runbookEntries(s.audit(t)) {
			if !yield(k) {
				return
			}
		}
	}), "only the leader commanded the nodes")
	s.requireNoViolations(t)
}

// waitSimConfirmed waits until the responder's own probes, with the daemons' config, confirm
// the split-brain.
func waitSimConfirmed(t *testing.T, s *simCluster, cfgPath string) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	p := detect.NewProber(cfg, detect.Options{})
	defer p.Close()
	waitProbeConfirmed(t, p, s.name)
}
