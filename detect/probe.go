// Package detect owns confirmation: the responder's own probes of a ZMY cluster (one file per
// probe, one signature, looked up by name), the pure verdict over their evidence, the dynamic
// split-brain threshold, the clock fuse, per-node breakers and watch mode. It never runs a
// mutating zmyctl command: the driver interface it consumes has read-only methods only.
package detect

import (
	"context"
	"net/http"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// Probe names: the probe label of the metrics and Evidence.Probe.
const (
	ProbeControl   = "control"
	ProbeRaftState = "raft_state"
	ProbeData      = "data"
	ProbeTCP       = "tcp"
	ProbeNetcheck  = "netcheck"
	ProbeHTTP      = "http"
	ProbeGRPC      = "grpc"
	ProbeRedis     = "redis"
	ProbeEtcd      = "etcd"
	ProbeClock     = "clock"
)

// ProbeNames lists every probe; metrics pre-create their label values from it.
var ProbeNames = []string{ProbeControl, ProbeRaftState, ProbeData, ProbeTCP, ProbeNetcheck,
	ProbeHTTP, ProbeGRPC, ProbeRedis, ProbeEtcd, ProbeClock}

// ProbeFunc is every probe: it reads one thing about the target within ctx's deadline and says
// what it saw, or why it could not.
type ProbeFunc func(ctx context.Context, t Target) Result

// Probes maps a probe name to its function, as blackbox_exporter's prober map does.
var Probes = map[string]ProbeFunc{
	ProbeControl:   ProbeControlPlane,
	ProbeRaftState: ProbeRaft,
	ProbeData:      ProbeDataPlane,
	ProbeTCP:       ProbePeerPort,
	ProbeNetcheck:  ProbeNetworkCheck,
	ProbeHTTP:      ProbeHealthz,
	ProbeGRPC:      ProbeGRPCHealth,
	ProbeRedis:     ProbeRedisPing,
	ProbeEtcd:      ProbeEtcdLeases,
	ProbeClock:     ProbeClockOffset,
}

// Zmyctl is the part of the zmyctl driver detect uses. Only read commands are declared, so
// confirmation cannot mutate a cluster by construction.
type Zmyctl interface {
	Status(ctx context.Context, node config.NodeConfig) (*zmy.QuorumStatus, *zmy.Result, error)
	RaftState(ctx context.Context, node config.NodeConfig) (*zmy.RaftState, *zmy.Result, error)
	Netcheck(ctx context.Context, node config.NodeConfig) (*zmy.Netcheck, *zmy.Result, error)
}

// Target is what a probe reads: a node of a cluster (Node is zero for cluster-wide probes such as
// etcd and redis) and the clients to read it with.
type Target struct {
	Cluster *config.ClusterConfig
	Node    config.NodeConfig
	Zmyctl  Zmyctl
	HTTP    *http.Client
	// Redis is the dependency the redis probe PINGs.
	Redis config.RedisConfig
	// MaxBytes caps what is read from a node's HTTP answers.
	MaxBytes int64
	// Metrics, when set, is the node's /metrics for this round: the data-plane and clock probes
	// of one round share one scrape through it. Nil: each probe scrapes on its own.
	Metrics func(ctx context.Context) (*zmy.NodeMetrics, error)
	// GRPC keeps the gRPC health probe's connections across rounds; nil dials one per check.
	GRPC *GRPCPool
}

// Status is how a probe ended; it is the result label of probe_results_total.
type Status string

const (
	StatusOK      Status = "ok"      // answered, and the answer is healthy
	StatusFail    Status = "fail"    // answered (or, for tcp, measurably unreachable), unhealthy
	StatusError   Status = "error"   // no usable answer: timeout, exec failure, malformed output
	StatusSkipped Status = "skipped" // not run: the node's breaker is open
	// StatusBudgetExhausted: not run, or cut short after waiting for its turn, because the
	// daemon's probe budget (detection.concurrency) was busy until the round's budget ended.
	// It says nothing about the node.
	StatusBudgetExhausted Status = "budget_exhausted"
)

// Statuses lists every status; metrics pre-create their label values from it.
var Statuses = []Status{StatusOK, StatusFail, StatusError, StatusSkipped, StatusBudgetExhausted}

// Result is one probe's reading of one target.
type Result struct {
	Probe    string
	Node     string // "" for cluster-wide probes
	Status   Status
	Value    string // short human reading, e.g. "QUORUM_LOST leader_id=n4 term=9"
	Raw      string // capped excerpt of what was read
	Duration time.Duration
	// Reason says why the result is not ok, in a phrase an SRE can act on; Err is the cause.
	Reason string
	Err    error
	// Data is the typed reading decide() works from: *zmy.QuorumStatus, *zmy.RaftState,
	// *zmy.NodeMetrics, *TCPReading, *zmy.Netcheck, *ClockReading, *EtcdReading; nil when none.
	Data any
}

// Answered reports whether the probe got an answer (ok or fail).
func (r Result) Answered() bool { return r.Status == StatusOK || r.Status == StatusFail }

// maxRaw caps raw excerpts kept as evidence: a verdict of 200 nodes holds some 1,600 of them and
// is journaled with the incident, so each stays a readable excerpt, not a copy.
const maxRaw = 512

func capRaw(s string) string {
	if len(s) <= maxRaw {
		return s
	}
	return s[:maxRaw] + "…"
}

// conditionOf is the SOP condition a probe bears on.
func conditionOf(probe string) incident.Condition {
	switch probe {
	case ProbeControl, ProbeRaftState:
		return incident.CondControl
	case ProbeData:
		return incident.CondData
	case ProbeTCP, ProbeNetcheck:
		return incident.CondNetwork
	case ProbeClock:
		return incident.CondClock
	}
	return incident.CondHealth
}

// run times a probe and stamps its name and node, so probe files only say what they saw.
func run(ctx context.Context, name string, t Target) Result {
	start := time.Now()
	r := Probes[name](ctx, t)
	r.Probe, r.Node = name, t.Node.ID
	r.Duration = time.Since(start)
	r.Raw = capRaw(r.Raw)
	return r
}
