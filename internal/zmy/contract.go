// Package zmy owns what the responder knows of a ZMY node: the zmyctl command surface and its
// outputs (this file is the contract the simulator implements and the driver parses), the
// driver that runs zmyctl through a per-cluster argv template, and the /metrics scraper.
package zmy

import "time"

// The zmyctl command surface (docs/node-contract.md describes it for operators). Every command accepts `-o json` (or `--output json`)
// before or after the command words; the JSON shapes are the structs below. Text output is the
// default and is described on each command. Exit codes are the Exit* constants.
//
//	status --quorum         text: "QUORUM_OK leader_id=n1 term=7 node=n1\n"       json: QuorumStatus
//	raft state              text: "raft_state=leader term=7 leader_id=n1 node=n1\n" json: RaftState
//	                        (raft state prints JSON even without -o json, as the seed's
//	                        `zmyctl raft state | jq '.raft_state'` expects)
//	raft suspend --force    text: "suspended node=n1\n"                            json: RaftState
//	                        idempotent; without --force it exits ExitUsage
//	raft resume             text: "resumed node=n1 raft_state=follower\n"          json: RaftState
//	                        idempotent
//	snapshot save --tag T   text: "snapshot tag=T node=n1 created=true entries=123\n" json: Snapshot
//	                        idempotent per tag: a second save with the same tag reports created=false
//	snapshot list           text: one "tag=T node=n1 entries=123 at=<RFC3339>" line per snapshot
//	                        json: []Snapshot
//	quorum recover --auto   text: "recovered majority=n1,n2,n3 leader=n1 term=9 discarded=42\n"
//	                        json: RecoverResult; ExitNoUniqueMajority / ExitNotConverged otherwise
//	debug netcheck --full   text: one "peer=n2 addr=127.0.0.1:7071 reachable=true rtt_ms=0.4 firewall_blocked=false"
//	                        line per peer, then "partition_score=0.00 node=n1"
//	                        json: Netcheck
//
// Errors are written to stderr as one line "error: <reason>".

// Exit codes of zmyctl (and of `zmysim ctl`). The driver maps them to typed errors.
const (
	ExitOK               = 0
	ExitError            = 1 // any other failure
	ExitUsage            = 2 // unknown command or missing flag
	ExitUnreachable      = 3 // the node's admin endpoint could not be reached
	ExitNoUniqueMajority = 4 // quorum recover: no group holds a strict majority (tie, 3-way split)
	ExitNotConverged     = 5 // quorum recover: the network has not healed yet
	ExitRefused          = 6 // the node refused the command in its current state
)

// Quorum values reported by `status --quorum`.
const (
	QuorumOK   = "QUORUM_OK"
	QuorumLost = "QUORUM_LOST"
)

// Raft states reported by `raft state`.
const (
	StateLeader    = "leader"
	StateFollower  = "follower"
	StateCandidate = "candidate"
	StateSuspended = "suspended"
)

// QuorumStatus is `status --quorum -o json`.
type QuorumStatus struct {
	Node     string   `json:"node"`
	Quorum   string   `json:"quorum"`    // QuorumOK or QuorumLost
	LeaderID string   `json:"leader_id"` // "" when the node knows no leader
	Term     uint64   `json:"term"`
	Members  []string `json:"members"` // nodes this node can currently reach, itself included
}

// RaftState is `raft state` (always JSON) and the JSON answer of suspend/resume.
type RaftState struct {
	Node      string `json:"node"`
	RaftState string `json:"raft_state"` // StateLeader, StateFollower, StateCandidate, StateSuspended
	Term      uint64 `json:"term"`
	LeaderID  string `json:"leader_id"`
	// SuspendedBy is the ZMY_ACTOR of the `raft suspend` that suspended the node (optional:
	// empty when the node does not say). A second suspend of a suspended node keeps the first.
	SuspendedBy string `json:"suspended_by,omitempty"`
	// LastRecover is the cluster's latest successful `quorum recover` as the node knows it
	// (optional): how a responder that crashed with a recover in flight learns it landed.
	LastRecover *LastRecover `json:"last_recover,omitempty"`
}

// LastRecover is a recovery the cluster went through: what it answered, when, and who asked.
type LastRecover struct {
	RecoverResult
	At    time.Time `json:"at"`
	Actor string    `json:"actor,omitempty"`
}

// Snapshot is `snapshot save --tag T -o json` and an element of `snapshot list -o json`.
type Snapshot struct {
	Node    string            `json:"node"`
	Tag     string            `json:"tag"`
	Created bool              `json:"created"` // false when the tag already existed (idempotent save)
	Entries int               `json:"entries"` // log entries held by the snapshot
	Shards  map[string]uint64 `json:"shards"`  // shard id -> last applied index captured
	At      time.Time         `json:"at"`
}

// RecoverResult is `quorum recover --auto -o json` on success.
type RecoverResult struct {
	Majority  []string `json:"majority"` // node ids of the one legal majority
	Leader    string   `json:"leader"`   // leader of the recovered cluster
	Term      uint64   `json:"term"`
	Discarded int      `json:"discarded"` // divergent minority entries discarded
}

// PeerCheck is one peer in `debug netcheck --full`.
type PeerCheck struct {
	Peer            string  `json:"peer"`
	Addr            string  `json:"addr"` // peer port address host:port
	Reachable       bool    `json:"reachable"`
	RTTMillis       float64 `json:"rtt_ms"`
	FirewallBlocked bool    `json:"firewall_blocked"` // a local firewall rule blocks the peer port
}

// Netcheck is `debug netcheck --full -o json`.
type Netcheck struct {
	Node           string      `json:"node"`
	Peers          []PeerCheck `json:"peers"`
	PartitionScore float64     `json:"partition_score"` // 0 connected … 1 a clean split (PartitionScore)
}

// Node metrics (docs/node-contract.md) exposed on each node's HTTP /metrics. The driver's scraper reads them;
// the seed's per-shard names `shard_<N>_last_applied_index` parse as well.
const (
	MetricShardLastApplied = "zmy_shard_last_applied_index"   // gauge{shard}
	MetricQuorum           = "zmy_quorum_up"                  // gauge: 1 QUORUM_OK, 0 QUORUM_LOST
	MetricIsLeader         = "zmy_raft_is_leader"             // gauge: 1 if this node is a leader
	MetricLeaderInfo       = "zmy_raft_leader_info"           // gauge{leader_id} = 1
	MetricTerm             = "zmy_raft_term"                  // gauge
	MetricSuspended        = "zmy_raft_suspended"             // gauge: 1 when suspended
	MetricPeerRTT          = "zmy_peer_heartbeat_rtt_seconds" // gauge{peer}; NaN/absent when unreachable
	MetricPeerUp           = "zmy_peer_up"                    // gauge{peer}: 1 reachable, 0 not
	MetricSyncLag          = "zmy_sync_lag_seconds"           // gauge
	MetricClock            = "zmy_node_clock_seconds"         // gauge: node wall clock, unix seconds (float)
	MetricWritesTotal      = "zmy_writes_total"               // counter{result="accepted|rejected"}
	MetricPartitionScore   = "zmy_partition_score"            // gauge: the node's netcheck partition_score
)
