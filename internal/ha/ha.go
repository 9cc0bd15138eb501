// Package ha owns leadership: which responder replica acts on which ZMY cluster, and the fence
// its writes and commands carry. With the embedded journal there is one replica and it leads
// every cluster (Single). With the journal in etcd, replicas elect one leader per cluster
// (Elector): only that replica probes, silences and runs the cluster's runbook, every journal
// write it makes is fenced by its election key, and it stops commanding on its own once its
// lease may have expired.
package ha

import (
	"errors"
	"fmt"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Errors of Acting; both wrap ErrNotActing.
var (
	ErrNotActing = errors.New("this replica does not act on the cluster")
	// ErrNotLeader: another replica leads the cluster (or nobody does yet).
	ErrNotLeader = fmt.Errorf("not the cluster's leader: %w", ErrNotActing)
	// ErrStale: this replica led the cluster but has not heard from etcd for longer than is
	// safe (its lease may have expired, another replica may lead): it must stop commanding.
	ErrStale = fmt.Errorf("leadership stale, no lease keepalive answered recently: %w", ErrNotActing)
)

// Single is the leadership of a lone replica on the embedded journal: it acts on every
// cluster, unfenced (nothing else writes its journal: the file is locked).
type Single struct{}

// Acting always lets the replica act, with no fence.
func (Single) Acting(string) (incident.Fence, error) { return incident.Fence{}, nil }

// Changes never delivers: a lone replica never gains or loses a cluster.
func (Single) Changes() <-chan string { return nil }
