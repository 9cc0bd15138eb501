package zmy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The text examples are contract.go's, verbatim; each has its JSON twin.

func TestParseStatus(t *testing.T) {
	want := &QuorumStatus{Node: "n1", Quorum: QuorumOK, LeaderID: "n1", Term: 7}
	for _, out := range []string{
		"QUORUM_OK leader_id=n1 term=7 node=n1\n",
		`{"node":"n1","quorum":"QUORUM_OK","leader_id":"n1","term":7}`,
		"  \n{\"node\":\"n1\",\"quorum\":\"QUORUM_OK\",\"leader_id\":\"n1\",\"term\":7}\n\n",
	} {
		got, err := ParseStatus(out)
		require.NoError(t, err, out)
		require.Equal(t, want, got)
	}
	got, err := ParseStatus("QUORUM_LOST leader_id= term=3 node=n4 members=n4,n5")
	require.NoError(t, err)
	require.Equal(t, &QuorumStatus{Node: "n4", Quorum: QuorumLost, Term: 3, Members: []string{"n4", "n5"}}, got)
	got, err = ParseStatus(`{"node":"n4","quorum":"QUORUM_LOST","leader_id":"n4","term":3,"members":["n4","n5"],"future_field":1}`)
	require.NoError(t, err, "unknown JSON fields are a newer zmyctl, not an error")
	require.Equal(t, []string{"n4", "n5"}, got.Members)
}

func TestParseRaftState(t *testing.T) {
	for out, want := range map[string]*RaftState{
		"raft_state=leader term=7 leader_id=n1 node=n1\n":               {Node: "n1", RaftState: StateLeader, Term: 7, LeaderID: "n1"},
		`{"node":"n1","raft_state":"leader","term":7,"leader_id":"n1"}`: {Node: "n1", RaftState: StateLeader, Term: 7, LeaderID: "n1"},
		"suspended node=n1\n": {Node: "n1", RaftState: StateSuspended},
		`{"node":"n1","raft_state":"suspended","term":7,"leader_id":"n1"}`: {Node: "n1", RaftState: StateSuspended, Term: 7, LeaderID: "n1"},
		"resumed node=n1 raft_state=follower\n":                            {Node: "n1", RaftState: StateFollower},
		"raft_state=candidate term=12 leader_id= node=n3":                  {Node: "n3", RaftState: StateCandidate, Term: 12},
	} {
		got, err := ParseRaftState(out)
		require.NoError(t, err, out)
		require.Equal(t, want, got, out)
	}
}

func TestParseSnapshot(t *testing.T) {
	got, err := ParseSnapshot("snapshot tag=pre-recover-1700000000 node=n1 created=true entries=123\n")
	require.NoError(t, err)
	require.Equal(t, &Snapshot{Node: "n1", Tag: "pre-recover-1700000000", Created: true, Entries: 123}, got)

	got, err = ParseSnapshot(`{"node":"n1","tag":"T","created":false,"entries":5,"shards":{"1":40,"2":41},"at":"2026-01-02T03:04:05Z"}`)
	require.NoError(t, err)
	require.Equal(t, &Snapshot{Node: "n1", Tag: "T", Entries: 5, Shards: map[string]uint64{"1": 40, "2": 41},
		At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, got)
}

func TestParseSnapshotList(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := []Snapshot{{Node: "n1", Tag: "a", Entries: 1, At: at}, {Node: "n1", Tag: "b", Entries: 2, At: at}}
	for _, out := range []string{
		"tag=a node=n1 entries=1 at=2026-01-02T03:04:05Z\ntag=b node=n1 entries=2 at=2026-01-02T03:04:05Z\n",
		`[{"node":"n1","tag":"a","entries":1,"at":"2026-01-02T03:04:05Z"},{"node":"n1","tag":"b","entries":2,"at":"2026-01-02T03:04:05Z"}]`,
	} {
		got, err := ParseSnapshotList(out)
		require.NoError(t, err, out)
		require.Equal(t, want, got)
	}
	for _, empty := range []string{"[]", "null", "\n", ""} {
		got, err := ParseSnapshotList(empty)
		require.NoError(t, err, empty)
		require.Equal(t, []Snapshot{}, got)
	}
}

func TestParseRecover(t *testing.T) {
	want := &RecoverResult{Majority: []string{"n1", "n2", "n3"}, Leader: "n1", Term: 9, Discarded: 42}
	for _, out := range []string{
		"recovered majority=n1,n2,n3 leader=n1 term=9 discarded=42\n",
		`{"majority":["n1","n2","n3"],"leader":"n1","term":9,"discarded":42}`,
	} {
		got, err := ParseRecover(out)
		require.NoError(t, err, out)
		require.Equal(t, want, got)
	}
}

func TestParseNetcheck(t *testing.T) {
	want := &Netcheck{Node: "n1", PartitionScore: 0.5, Peers: []PeerCheck{
		{Peer: "n2", Addr: "127.0.0.1:7071", Reachable: true, RTTMillis: 0.4},
		{Peer: "n3", Addr: "127.0.0.1:7072", FirewallBlocked: true},
	}}
	for _, out := range []string{
		"peer=n2 addr=127.0.0.1:7071 reachable=true rtt_ms=0.4 firewall_blocked=false\n" +
			"peer=n3 addr=127.0.0.1:7072 reachable=false rtt_ms= firewall_blocked=true\n" +
			"partition_score=0.50 node=n1\n",
		`{"node":"n1","partition_score":0.5,"peers":[{"peer":"n2","addr":"127.0.0.1:7071","reachable":true,"rtt_ms":0.4},` +
			`{"peer":"n3","addr":"127.0.0.1:7072","reachable":false,"firewall_blocked":true}]}`,
	} {
		got, err := ParseNetcheck(out)
		require.NoError(t, err, out)
		require.Equal(t, want, got)
	}
	got, err := ParseNetcheck("partition_score=0.00 node=n1")
	require.NoError(t, err, "a single-node cluster has no peers")
	require.Empty(t, got.Peers)
}

// TestParsersRejectMalformed lists outputs that must be ErrMalformed, never a zero value that
// looks like an answer: remediation acts on these.
func TestParsersRejectMalformed(t *testing.T) {
	parsers := map[string]func(string) error{
		"status":        func(s string) error { _, err := ParseStatus(s); return err },
		"raft state":    func(s string) error { _, err := ParseRaftState(s); return err },
		"snapshot":      func(s string) error { _, err := ParseSnapshot(s); return err },
		"snapshot list": func(s string) error { _, err := ParseSnapshotList(s); return err },
		"recover":       func(s string) error { _, err := ParseRecover(s); return err },
		"netcheck":      func(s string) error { _, err := ParseNetcheck(s); return err },
	}
	for _, tc := range []struct{ parser, out string }{
		{"status", ""},
		{"status", "QUORUM_MAYBE leader_id=n1 term=7 node=n1"},
		{"status", "QUORUM_OK term=-1"},
		{"status", "QUORUM_OK term=99999999999999999999999"},
		{"status", "QUORUM_OK leader_id=n1\nQUORUM_LOST leader_id=n2"},
		{"status", `{"quorum":"QUORUM_OK","term":"seven"}`},
		{"status", `{"quorum":"QUORUM_OK"}{"quorum":"QUORUM_LOST"}`},
		{"status", `[{"quorum":"QUORUM_OK"}]`},
		{"status", `{}`},
		{"status", `null`},
		{"status", "QUORUM_OK =x"},
		{"status", "QUORUM_OK node=n1 stray"},
		{"raft state", "raft_state=dancing node=n1"},
		{"raft state", "node=n1 term=3"},
		{"raft state", "exploded node=n1 raft_state=leader"},
		{"raft state", `{"raft_state":"Leader"}`},
		{"snapshot", "snapshot node=n1 created=true"},
		{"snapshot", "tag=T node=n1"},
		{"snapshot", "snapshot tag=T created=yesno"},
		{"snapshot", "snapshot tag=T entries=99999999999"},
		{"snapshot", `{"tag":"T","entries":-1}`},
		{"snapshot list", "tag=a entries=x"},
		{"snapshot list", "tag=a at=yesterday"},
		{"snapshot list", `[{"tag":""}]`},
		{"snapshot list", `{"tag":"a"}`},
		{"recover", "recovered majority= leader=n1"},
		{"recover", "recovered majority=n1,n1,n2 leader=n1"},
		{"recover", "recovered majority=n1,,n2 leader=n1"},
		{"recover", "recovered majority=n1,n2,n3 leader=n4"},
		{"recover", "recovered majority=n1,n2,n3 discarded=-3"},
		{"recover", "majority=n1,n2,n3 leader=n1"},
		{"recover", `{"majority":[],"leader":""}`},
		{"recover", `{"majority":["n1","n2"],"leader":"n3"}`},
		{"netcheck", "peer=n2 reachable=true"},
		{"netcheck", "partition_score=1.5 node=n1"},
		{"netcheck", "partition_score=NaN node=n1"},
		{"netcheck", "partition_score=0.1\npartition_score=0.2"},
		{"netcheck", "peer=n2 reachable=maybe\npartition_score=0"},
		{"netcheck", "peer=n2 rtt_ms=-1\npartition_score=0"},
		{"netcheck", "peer= reachable=true\npartition_score=0"},
		{"netcheck", "PEER n2\npartition_score=0"},
		{"netcheck", `{"partition_score":-0.1}`},
	} {
		err := parsers[tc.parser](tc.out)
		require.ErrorIs(t, err, ErrMalformed, "%s: %q", tc.parser, tc.out)
	}
}
