package sim

import (
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Node metric descriptors (internal/zmy/contract.go). They carry no cluster or node label:
// Prometheus adds those as target labels.
var (
	descShard      = prometheus.NewDesc(zmy.MetricShardLastApplied, "Last applied Raft index of the shard on this node.", []string{"shard"}, nil)
	descQuorum     = prometheus.NewDesc(zmy.MetricQuorum, "1 when this node's group holds a majority (QUORUM_OK), 0 when QUORUM_LOST.", nil, nil)
	descIsLeader   = prometheus.NewDesc(zmy.MetricIsLeader, "1 when this node leads its group.", nil, nil)
	descLeaderInfo = prometheus.NewDesc(zmy.MetricLeaderInfo, "The leader this node follows.", []string{"leader_id"}, nil)
	descTerm       = prometheus.NewDesc(zmy.MetricTerm, "Current Raft term of this node.", nil, nil)
	descSuspended  = prometheus.NewDesc(zmy.MetricSuspended, "1 when this node refuses proposals (raft suspend).", nil, nil)
	descPeerRTT    = prometheus.NewDesc(zmy.MetricPeerRTT, "Heartbeat round trip to a reachable peer.", []string{"peer"}, nil)
	descPeerUp     = prometheus.NewDesc(zmy.MetricPeerUp, "1 when the peer is reachable from this node.", []string{"peer"}, nil)
	descSyncLag    = prometheus.NewDesc(zmy.MetricSyncLag, "Replication lag behind the leader.", nil, nil)
	descClock      = prometheus.NewDesc(zmy.MetricClock, "This node's wall clock, unix seconds.", nil, nil)
	descWrites     = prometheus.NewDesc(zmy.MetricWritesTotal, "Client writes by result.", []string{"result"}, nil)
	descPartition  = prometheus.NewDesc(zmy.MetricPartitionScore, "How cleanly the network cuts this node's side off from the live peers it cannot reach: 0 connected, 1 a clean split (netcheck partition_score).", nil, nil)
)

// seedShardDesc is the seed's per-shard metric name, shard_<N>_last_applied_index, which the
// seed's `curl …/metrics | grep shard_1_last_applied` expects.
func seedShardDesc(shard string) *prometheus.Desc {
	return prometheus.NewDesc("shard_"+shard+"_last_applied_index",
		"Last applied Raft index of shard "+shard+" (the seed's metric name).", nil, nil)
}

// nodeCollector reads one node's state from the model at scrape time.
type nodeCollector struct {
	c     *Cluster
	idx   int
	seeds []*prometheus.Desc // seed-style per-shard descriptors, by shard position
}

func newNodeCollector(c *Cluster, i int) *nodeCollector {
	nc := &nodeCollector{c: c, idx: i}
	for _, id := range shardIDs(c.opts.Shards) {
		nc.seeds = append(nc.seeds, seedShardDesc(id))
	}
	return nc
}

// Describe sends nothing: the collector is unchecked because peers and leaders vary.
func (nc *nodeCollector) Describe(chan<- *prometheus.Desc) {}

func (nc *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	c := nc.c
	c.mu.Lock()
	m := c.m
	n := m.nodes[nc.idx]
	counts := append([]uint64(nil), n.log.counts...)
	state, leaderID := m.raftState(nc.idx)
	quorum := m.quorum(nc.idx)
	term, accepted, rejected, skew := n.term, n.accepted, n.rejected, n.skew
	type peer struct {
		id string
		up bool
	}
	peers := make([]peer, 0, len(m.nodes)-1)
	for j, p := range m.nodes {
		if j != nc.idx {
			peers = append(peers, peer{p.id, m.connected(nc.idx, j)})
		}
	}
	score := m.partitionScore(nc.idx)
	c.mu.Unlock()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for s, id := range shardIDs(len(counts)) {
		gauge(descShard, float64(counts[s]), id)
		gauge(nc.seeds[s], float64(counts[s]))
	}
	gauge(descQuorum, b2f(quorum))
	gauge(descIsLeader, b2f(state == zmy.StateLeader))
	if leaderID != "" {
		gauge(descLeaderInfo, 1, leaderID)
	}
	gauge(descTerm, float64(term))
	gauge(descSuspended, b2f(state == zmy.StateSuspended))
	for _, p := range peers {
		gauge(descPeerUp, b2f(p.up), p.id)
		if p.up {
			gauge(descPeerRTT, heartbeatRTT().Seconds(), p.id)
		}
	}
	gauge(descSyncLag, (time.Millisecond + rand.N(4*time.Millisecond)).Seconds())
	gauge(descClock, float64(time.Now().Add(skew).UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(accepted), "accepted")
	ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(rejected), "rejected")
	gauge(descPartition, score)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
