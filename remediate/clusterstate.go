package remediate

import (
	"context"
	"fmt"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// PauseState is a cluster's kill switch: who paused it, why and when.
type PauseState struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// clusterState is the per-cluster document kept in the journal (PutState), so that a pause and
// the anti-flap clock survive restarts.
type clusterState struct {
	Paused *PauseState `json:"paused,omitempty"`
	// LastIncident/LastOutcome are the latest closed incident of the cluster.
	LastIncident string           `json:"last_incident,omitempty"`
	LastOutcome  incident.Outcome `json:"last_outcome,omitempty"`
	// LastRemediationAt is when the latest remediation that mutated nodes finished.
	LastRemediationAt       *time.Time `json:"last_remediation_at,omitempty"`
	LastRemediationIncident string     `json:"last_remediation_incident,omitempty"`
	// BreakerRecorded is the last incident whose result went to the breaker: a close retried
	// after a crash does not count twice.
	BreakerRecorded string `json:"breaker_recorded,omitempty"`
}

func clusterStateKey(cluster string) string { return "remediate/cluster/" + cluster }

// loadClusterState reads the cluster's document; a missing one is the zero state.
func loadClusterState(ctx context.Context, j stateStore, cluster string) (clusterState, error) {
	var st clusterState
	if _, err := j.GetState(ctx, clusterStateKey(cluster), &st); err != nil {
		return st, fmt.Errorf("read state of cluster %s: %w", cluster, err)
	}
	return st, nil
}

// updateClusterState applies fn to the cluster's document and stores it. Callers hold
// Engine.stateMu: the journal offers no compare-and-swap on state documents.
func updateClusterState(ctx context.Context, j stateStore, cluster string, fn func(*clusterState)) error {
	st, err := loadClusterState(ctx, j, cluster)
	if err != nil {
		return err
	}
	fn(&st)
	if err := j.PutState(ctx, clusterStateKey(cluster), st); err != nil {
		return fmt.Errorf("write state of cluster %s: %w", cluster, err)
	}
	return nil
}
