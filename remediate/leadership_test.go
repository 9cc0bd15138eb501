package remediate

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/sim"
)

// switchLeadership is a leadership a test turns on and off.
type switchLeadership struct {
	mu      sync.Mutex
	acting  bool
	changes chan string
}

func newSwitch(acting bool) *switchLeadership {
	return &switchLeadership{acting: acting, changes: make(chan string, 8)}
}

func (s *switchLeadership) Acting(string) (incident.Fence, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.acting {
		return incident.Fence{}, errors.New("not the leader")
	}
	return incident.Fence{Key: "/t/leader/x", Revision: 7}, nil
}

func (s *switchLeadership) Changes() <-chan string { return s.changes }

func (s *switchLeadership) set(acting bool, cluster string) {
	s.mu.Lock()
	s.acting = acting
	s.mu.Unlock()
	s.changes <- cluster
}

// A replica that does not lead the cluster leaves its incident alone, whatever the deliveries;
// when it comes to lead, it resumes the incident from the journal; when it stops leading in the
// middle, it sends nothing more.
func TestOnlyTheLeaderActs(t *testing.T) {
	s := startSim(t, "upsilon", 5, "")
	cfg := testConfig(t, s)
	cfg.Remediation.RequireApproval = true
	lead := newSwitch(false)
	r := &rig{sim: s, cfg: cfg, dir: t.TempDir(), lead: lead}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	r.waitConfirmed(t)
	id := r.fire(t)
	r.deliver(t, "firing", "am-1")
	// Nothing acts on it: wait for the runner the kick started to have looked and left.
	require.Eventually(t, func() bool {
		r.e.mu.Lock()
		defer r.e.mu.Unlock()
		return len(r.e.runners) == 0
	}, 10*time.Second, 10*time.Millisecond)
	inc, err := r.j.Get(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, incident.StepReceived, inc.Step)
	require.Zero(t, runbookCommands(s.audit(t)), "a replica that does not lead sends nothing")

	lead.set(true, s.name)
	r.waitStep(t, id, incident.StepAwaitingRecovery, 30*time.Second)
	require.Positive(t, countMutating(s.audit(t)))

	// Deposed at the gate: the runner stops, the approval and the heal change nothing here.
	lead.set(false, s.name)
	require.Eventually(t, func() bool {
		r.e.mu.Lock()
		defer r.e.mu.Unlock()
		return len(r.e.runners) == 0
	}, 10*time.Second, 10*time.Millisecond)
	sent := runbookCommands(s.audit(t))
	s.fault(t, "heal")
	_, err = r.e.Approve(t.Context(), id, approval("alice"))
	require.NoError(t, err)
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		require.Equal(t, sent, runbookCommands(s.audit(t)), "a deposed leader sends no command")
	}
	inc, err = r.j.Get(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, incident.StepAwaitingRecovery, inc.Step)

	lead.set(true, s.name)
	inc = r.waitClosed(t, id, 40*time.Second)
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	s.requireNoViolations(t)
}

// runbookCommands counts the commands a runbook sent (they carry its ZMY_ACTOR; probes do not).
func runbookCommands(audit []sim.AuditEntry) int {
	n := 0
	for _, e := range audit {
		if e.Actor != "" {
			n++
		}
	}
	return n
}

// An incident another replica journaled is picked up when the store signals a change, not at
// the next scan (an hour here): replicas learn of each other's writes through the store's watch.
func TestStoreChangesWakeTheLeader(t *testing.T) {
	s := startSim(t, "phi", 5, "")
	cfg := testConfig(t, s)
	changes := make(chan struct{}, 1)
	r := &rig{sim: s, cfg: cfg, dir: t.TempDir(), lead: newSwitch(true), scan: time.Hour,
		changes: func(context.Context) <-chan struct{} { return changes }}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })

	require.Eventually(t, func() bool { // past Run's first look at the open incidents
		r.e.mu.Lock()
		defer r.e.mu.Unlock()
		return r.e.ctx != nil
	}, 10*time.Second, 5*time.Millisecond)
	// Journaled as another replica's webhook would: no Kick reaches this engine.
	now := time.Now()
	res, err := r.j.Ingest(t.Context(), []incident.Delivery{{
		Cluster: s.name, Alertname: "ZMY_Quorum_Down", Known: true,
		Alert: incident.AlertRecord{
			GroupKey: "{}:{alertname=\"ZMY_Quorum_Down\"}", Receiver: "am-0", Fingerprint: "f00dfeed",
			Status: "firing", StartsAt: now.Add(-time.Minute).Truncate(time.Second), ReceivedAt: now,
			Labels: map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": s.name},
		},
	}})
	require.NoError(t, err)
	id := res[0].IncidentID
	changes <- struct{}{}
	require.Eventually(t, func() bool {
		inc, err := r.j.Get(t.Context(), id)
		require.NoError(t, err)
		return inc.Step != incident.StepReceived
	}, 30*time.Second, 20*time.Millisecond, "the signalled change started the incident's runbook")
}
