package incident

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGateNote(t *testing.T) {
	inc := &Incident{}
	note, at := inc.GateNote()
	require.Empty(t, note)
	require.True(t, at.IsZero())
	inc.Timeline = []Event{
		{At: t0, Step: StepContaining, Message: "gate closed: not the gate's line"},
		{At: t0.Add(1), Step: StepAwaitingRecovery, Message: "gate closed: network not converged; waiting for a human approval"},
		{At: t0.Add(2), Step: StepAwaitingRecovery, Message: "approved by alice: ok"},
	}
	note, at = inc.GateNote()
	require.Equal(t, "network not converged; waiting for a human approval", note)
	require.Equal(t, t0.Add(1), at)
	inc.Timeline = append(inc.Timeline, Event{At: t0.Add(3), Step: StepAwaitingRecovery, Message: "gate open: network converged, etcd healthy"})
	note, _ = inc.GateNote()
	require.Equal(t, "nothing: gate open: network converged, etcd healthy", note)

	// The structured gate, when the engine journals one, is read instead.
	inc.Gate = &GateStatus{WaitingFor: []string{"network", "approval"}, CheckedAt: t0.Add(5), PartitionScore: 0.75,
		Reason: "network not converged", UnhealthyEtcd: []string{"http://e1:2379: no leader"}}
	note, at = inc.GateNote()
	require.Equal(t, "network, approval: network not converged; partition score 0.75; etcd unhealthy: http://e1:2379: no leader", note)
	require.Equal(t, t0.Add(5), at)
	inc.Gate.WaitingFor = nil
	note, _ = inc.GateNote()
	require.Equal(t, "nothing: the gate is open", note)
}

func TestCommandNodes(t *testing.T) {
	inc := &Incident{
		Verdict:  &Verdict{Evidence: []Evidence{{Node: "n1"}, {Node: "n1"}, {Node: "n2"}, {Node: "n3"}, {Probe: "etcd"}}},
		Commands: []Command{{Node: "n3"}, {Node: "n9"}, {Node: "n1"}, {Node: "n3"}},
	}
	require.Equal(t, []string{"n1", "n3", "n9"}, inc.CommandNodes())
	inc.Verdict = nil
	require.Equal(t, []string{"n3", "n9", "n1"}, inc.CommandNodes())
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		849_600 * time.Microsecond: "850ms", 12_440 * time.Millisecond: "12.4s", 185 * time.Second: "3m05s",
		130 * time.Minute: "2h10m", -2 * time.Second: "-2s", 0: "0s",
	} {
		require.Equal(t, want, HumanDuration(d), "%v", d)
	}
}
