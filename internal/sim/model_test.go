package sim

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// testModel drives the model with a fake clock: no servers, no goroutines, deterministic.
type testModel struct {
	t   *testing.T
	m   *model
	now time.Time
}

const testDelay = 100 * time.Millisecond

func newTestModel(t *testing.T, n int) *testModel {
	t.Helper()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return &testModel{t: t, m: newModel(n, 4, testDelay, now), now: now}
}

// settle lets any pending election happen.
func (tm *testModel) settle() {
	tm.m.step(tm.now)
	tm.now = tm.now.Add(testDelay + time.Millisecond)
	tm.m.step(tm.now)
}

func (tm *testModel) writes(k int) {
	for range k {
		tm.now = tm.now.Add(time.Millisecond)
		tm.m.write(tm.now)
	}
}

func (tm *testModel) partition(spec string) {
	tm.t.Helper()
	var groups [][]string
	for g := range strings.SplitSeq(spec, "/") {
		groups = append(groups, strings.Split(g, ","))
	}
	require.NoError(tm.t, tm.m.setPartition(groups))
	tm.m.recomputeTopology(tm.now)
	tm.settle()
}

func (tm *testModel) heal() {
	tm.t.Helper()
	require.NoError(tm.t, tm.m.setPartition([][]string{tm.m.ids()}))
	tm.m.recomputeTopology(tm.now)
	tm.m.step(tm.now)
}

func (tm *testModel) idx(id string) int {
	tm.t.Helper()
	i, err := tm.m.nodeIndex(id)
	require.NoError(tm.t, err)
	return i
}

func (tm *testModel) suspendAll() {
	for i := range tm.m.nodes {
		tm.m.suspend(i, "")
		tm.m.nodes[i].suspendReported = true
	}
}

func (tm *testModel) snapshotAll(tag string) {
	for i := range tm.m.nodes {
		tm.m.snapshotSave(i, tag, tm.now)
	}
}

func (tm *testModel) resumeAll() {
	for i := range tm.m.nodes {
		tm.m.resume(i, tm.now)
	}
	tm.settle()
}

func (tm *testModel) kinds() []string {
	var out []string
	for _, v := range tm.m.violations {
		out = append(out, v.Kind)
	}
	return out
}

func (tm *testModel) leaders() []string {
	var out []string
	for i, n := range tm.m.nodes {
		if st, _ := tm.m.raftState(i); st == zmy.StateLeader && !n.killed {
			out = append(out, n.id)
		}
	}
	return out
}

func TestHealthyClusterHasOneLeaderAndEqualIndexes(t *testing.T) {
	tm := newTestModel(t, 5)
	tm.settle()
	tm.writes(40)
	require.Equal(t, []string{"n1"}, tm.leaders())
	for i, n := range tm.m.nodes {
		require.Equal(t, []uint64{10, 10, 10, 10}, n.log.counts, "node %s", n.id)
		require.Equal(t, zmy.QuorumOK, tm.m.quorumStatus(i).Quorum)
	}
}

func TestPartitionThreeTwoDivergesWithTwoLeaders(t *testing.T) {
	tm := newTestModel(t, 5)
	tm.settle()
	tm.writes(20)
	tm.partition("n1,n2,n3/n4,n5")
	require.Equal(t, []string{"n1", "n4"}, tm.leaders(), "each side keeps a leader: the seed's flaw")
	tm.writes(50)

	n1, n4 := tm.m.nodes[tm.idx("n1")], tm.m.nodes[tm.idx("n4")]
	require.Greater(t, n4.term, n1.term, "the minority elected in a higher term")
	require.NotZero(t, n4.accepted, "the minority leader keeps accepting writes")
	require.NotEqual(t, n1.log.counts, n4.log.counts, "shards diverge across the groups")
	require.Equal(t, zmy.QuorumOK, tm.m.quorumStatus(tm.idx("n2")).Quorum)
	for _, id := range []string{"n4", "n5"} {
		st := tm.m.quorumStatus(tm.idx(id))
		require.Equal(t, zmy.QuorumLost, st.Quorum, id)
		require.Equal(t, "n4", st.LeaderID, id)
		require.Equal(t, []string{"n4", "n5"}, st.Members, id)
	}
	require.True(t, tm.m.peerOpen(tm.idx("n1")))
	require.False(t, tm.m.peerOpen(tm.idx("n4")), "minority peer ports close toward the responder")

	nc := tm.m.netcheck(tm.idx("n5"), make([]string, 5))
	require.Equal(t, 1.0, nc.PartitionScore, "a clean split: n5's whole side is cut from the rest")
	for _, p := range nc.Peers {
		require.Equal(t, p.Peer == "n4", p.Reachable, p.Peer)
		require.False(t, p.FirewallBlocked, p.Peer)
	}
}

func TestRecoverRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes int
		split string
		heal  bool
		want  error
	}{
		{"before heal", 5, "n1,n2,n3/n4,n5", false, ErrNotConverged},
		{"tie 2|2", 4, "n1,n2/n3,n4", true, ErrNoUniqueMajority},
		{"three-way 3|2|2", 7, "n1,n2,n3/n4,n5/n6,n7", true, ErrNoUniqueMajority},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := newTestModel(t, tc.nodes)
			tm.settle()
			tm.partition(tc.split)
			tm.writes(30)
			tm.suspendAll()
			if tc.heal {
				tm.heal()
			}
			before := tm.m.nodes[0].term
			_, err := tm.m.recover(tm.now, "")
			require.ErrorIs(t, err, tc.want)
			require.Equal(t, before, tm.m.nodes[0].term, "a refused recover changes nothing")
		})
	}
}

func TestRecoverRefusesWhileFirewalled(t *testing.T) {
	tm := newTestModel(t, 5)
	tm.settle()
	tm.m.nodes[tm.idx("n4")].firewall = true
	tm.m.recomputeTopology(tm.now)
	tm.settle()
	_, err := tm.m.recover(tm.now, "")
	require.ErrorIs(t, err, ErrNotConverged)
}

func TestSnapshotIdempotentPerTag(t *testing.T) {
	tm := newTestModel(t, 3)
	tm.settle()
	tm.writes(10)
	first, created := tm.m.snapshotSave(0, "pre-recover-1", tm.now)
	require.True(t, created)
	require.True(t, first.Created)
	tm.writes(10)
	again, created := tm.m.snapshotSave(0, "pre-recover-1", tm.now.Add(time.Second))
	require.False(t, created)
	require.False(t, again.Created)
	require.Equal(t, first.Entries, again.Entries, "the second save returns the first snapshot")
	require.Equal(t, first.At, again.At)
	other, _ := tm.m.snapshotSave(0, "other", tm.now)
	require.Equal(t, first.Entries+10, other.Entries)
	require.Len(t, tm.m.snapshotList(0), 2)
}

// TestRightRunbookRecovers is the SOP: suspend all, snapshot all, heal, recover, resume.
func TestRightRunbookRecovers(t *testing.T) {
	tm := newTestModel(t, 5)
	tm.settle()
	tm.writes(20)
	tm.partition("n1,n2,n3/n4,n5")
	n4 := tm.m.nodes[tm.idx("n4")]
	before := n4.accepted
	tm.writes(50)
	divergent := int(n4.accepted - before)
	require.Positive(t, divergent)

	tm.suspendAll()
	tm.writes(10) // refused everywhere
	tm.snapshotAll("pre-recover-100")
	tm.heal()
	res, err := tm.m.recover(tm.now, "")
	require.NoError(t, err)
	require.Equal(t, []string{"n1", "n2", "n3"}, res.Majority)
	require.Equal(t, "n1", res.Leader)
	require.Equal(t, divergent, res.Discarded, "exactly the minority's divergent entries")
	require.Greater(t, res.Term, n4.term-1)

	// The discarded entries are in the minority's snapshots.
	snap := n4.snapshots["pre-recover-100"]
	require.Equal(t, 20+divergent, snap.log.len())

	tm.resumeAll()
	require.Equal(t, []string{"n1"}, tm.leaders())
	tm.writes(40)
	want := tm.m.nodes[0].log.counts
	for i, n := range tm.m.nodes {
		require.Equal(t, want, n.log.counts, n.id)
		require.Equal(t, zmy.QuorumOK, tm.m.quorumStatus(i).Quorum)
		require.Zero(t, n.overwritten, n.id)
	}
	require.Greater(t, tm.m.nodes[0].accepted, uint64(20), "writes continue after resume")
	require.Empty(t, tm.m.violations)
	require.Nil(t, tm.m.episode, "the episode closed once the cluster was whole again")
}

func TestWrongRunbooksAreCaught(t *testing.T) {
	// Every case partitions 3|2 with writes on both sides, then runs its steps.
	for _, tc := range []struct {
		name  string
		steps func(tm *testModel)
		want  []string
	}{{
		name: "resume before recover",
		steps: func(tm *testModel) {
			tm.suspendAll()
			tm.snapshotAll("pre-recover-1")
			tm.heal()
			tm.m.resume(tm.idx("n4"), tm.now)
		},
		want: []string{KindResumeBeforeRecover},
	}, {
		name: "recover without snapshots",
		steps: func(tm *testModel) {
			tm.suspendAll()
			tm.heal()
			_, err := tm.m.recover(tm.now, "")
			require.NoError(tm.t, err)
		},
		want: []string{KindRecoverBeforeSnapshot, KindDiscardedUnsnapshotted},
	}, {
		name: "recover with a node unsuspended",
		steps: func(tm *testModel) {
			for _, id := range []string{"n1", "n2", "n3", "n4"} {
				tm.m.suspend(tm.idx(id), "")
			}
			tm.snapshotAll("pre-recover-1")
			tm.heal()
			_, err := tm.m.recover(tm.now, "")
			require.NoError(tm.t, err)
		},
		want: []string{KindRecoverWhileWritable},
	}, {
		name: "snapshot taken with another tag",
		steps: func(tm *testModel) {
			tm.suspendAll()
			tm.snapshotAll("nightly")
			tm.heal()
			_, err := tm.m.recover(tm.now, "")
			require.NoError(tm.t, err)
		},
		want: []string{KindRecoverBeforeSnapshot},
	}, {
		name: "write after suspend",
		steps: func(tm *testModel) {
			tm.suspendAll()
			tm.m.accept(tm.idx("n2"), tm.now) // a lying node
		},
		want: []string{KindWriteAfterSuspend},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tm := newTestModel(t, 5)
			tm.settle()
			tm.writes(20)
			tm.partition("n1,n2,n3/n4,n5")
			tm.writes(30)
			tc.steps(tm)
			got := map[string]bool{}
			for _, k := range tm.kinds() {
				got[k] = true
			}
			for _, k := range tc.want {
				require.True(t, got[k], "want a %s violation, got %v", k, tm.kinds())
			}
			require.Len(t, got, len(tc.want), "only the expected kinds, got %v", tm.kinds())
		})
	}
}

func TestSelfHealWithoutContainmentOverwritesAndClosesEpisode(t *testing.T) {
	tm := newTestModel(t, 5)
	tm.settle()
	tm.partition("n1,n2,n3/n4,n5")
	tm.writes(50)
	tm.heal()
	require.Len(t, tm.leaders(), 1, "the merged cluster has one leader again")
	var lost uint64
	for _, n := range tm.m.nodes {
		lost += n.overwritten
	}
	require.Positive(t, lost, "the flawed merge throws one side's writes away")
	require.Nil(t, tm.m.episode)
	require.Empty(t, tm.m.violations, "nobody ran a wrong command")
}

func TestKilledLeaderIsReplacedAndCatchesUpOnRestart(t *testing.T) {
	tm := newTestModel(t, 5)
	tm.settle()
	tm.writes(10)
	tm.m.nodes[0].killed = true
	tm.m.recomputeTopology(tm.now)
	tm.settle()
	require.Equal(t, []string{"n2"}, tm.leaders())
	require.Equal(t, zmy.QuorumOK, tm.m.quorumStatus(1).Quorum)
	tm.writes(20)
	tm.m.nodes[0].killed = false
	tm.m.recomputeTopology(tm.now)
	tm.m.step(tm.now)
	require.Equal(t, []string{"n2"}, tm.leaders(), "the restarted old leader steps down")
	require.Equal(t, tm.m.nodes[1].log.counts, tm.m.nodes[0].log.counts)
	require.Nil(t, tm.m.episode, "a crash is not a partition")
}

func TestCommonPrefix(t *testing.T) {
	mk := func(ids ...uint64) []entry {
		out := make([]entry, len(ids))
		for i, id := range ids {
			out[i] = entry{id: id}
		}
		return out
	}
	for _, tc := range []struct {
		a, b []entry
		want int
	}{
		{nil, nil, 0},
		{mk(1, 2, 3), mk(1, 2, 3), 3},
		{mk(1, 2, 3), mk(1, 2), 2},
		{mk(1, 2, 3, 4), mk(1, 2, 7, 8, 9), 2},
		{mk(5), mk(6), 0},
	} {
		require.Equal(t, tc.want, commonPrefix(tc.a, tc.b))
	}
}

func TestErrorsAreDistinct(t *testing.T) {
	require.False(t, errors.Is(ErrNotConverged, ErrNoUniqueMajority))
}

// A second successful recover in one episode is a violation (a responder that did not know its
// first one landed), and every node reports the last recover and who suspended it.
func TestRepeatedRecoverIsAViolation(t *testing.T) {
	tm := newTestModel(t, 5)
	tm.settle()
	tm.partition("n1,n2,n3/n4,n5")
	tm.writes(30)
	for i := range tm.m.nodes {
		tm.m.suspend(i, "r1/inc-000001/j1")
	}
	tm.m.suspend(0, "r2/inc-000007/j2") // already suspended: the first actor stays
	require.Equal(t, "r1/inc-000001/j1", tm.m.state(0).SuspendedBy)
	tm.snapshotAll("pre-recover-100")
	tm.heal()
	first, err := tm.m.recover(tm.now, "r1/inc-000001/j1")
	require.NoError(t, err)
	require.Empty(t, tm.m.violations)
	st := tm.m.state(3)
	require.NotNil(t, st.LastRecover)
	require.Equal(t, first, st.LastRecover.RecoverResult)
	require.Equal(t, "r1/inc-000001/j1", st.LastRecover.Actor)

	_, err = tm.m.recover(tm.now, "r1/inc-000001/j1")
	require.NoError(t, err)
	require.Len(t, tm.m.violations, 1)
	require.Equal(t, KindRepeatedRecover, tm.m.violations[0].Kind)
	require.Contains(t, tm.m.violations[0].Detail, fmt.Sprintf("term %d", first.Term))

	tm.m.resume(0, tm.now)
	require.Empty(t, tm.m.state(0).SuspendedBy, "a resumed node is suspended by nobody")
}
