package remediate

import (
	"context"
	"encoding/json"
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
	raw, err := j.GetState(ctx, clusterStateKey(cluster))
	if err == nil && raw != nil {
		err = json.Unmarshal(raw, &st)
	}
	if err != nil {
		return st, fmt.Errorf("read state of cluster %s: %w", cluster, err)
	}
	return st, nil
}

// updateClusterState applies fn to the cluster's document atomically (the store's
// read-modify-write), so a pause from the API and a close of an incident never lose each
// other's change.
func updateClusterState(ctx context.Context, j stateStore, cluster string, fn func(*clusterState)) error {
	err := j.UpdateState(ctx, clusterStateKey(cluster), func(cur []byte) ([]byte, error) {
		var st clusterState
		if cur != nil {
			if err := json.Unmarshal(cur, &st); err != nil {
				return nil, fmt.Errorf("decode: %w", err)
			}
		}
		fn(&st)
		return json.Marshal(st)
	})
	if err != nil {
		return fmt.Errorf("write state of cluster %s: %w", cluster, err)
	}
	return nil
}
