package remediate

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// openIncidents journals one open incident per cluster and returns their ids.
func openIncidents(t *testing.T, j *incident.Journal, clusters ...string) []string {
	t.Helper()
	var ids []string
	for _, c := range clusters {
		res, err := j.Ingest(t.Context(), []incident.Delivery{{Cluster: c, Alertname: "ZMY_Quorum_Down", Known: true,
			Alert: incident.AlertRecord{Fingerprint: "f-" + c, Status: "firing", StartsAt: time.Now(),
				Labels: map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": c}}}})
		require.NoError(t, err)
		ids = append(ids, res[0].IncidentID)
	}
	return ids
}

// Claims are counted from the store, atomically: of many incidents of different clusters
// guarding at once with blast radius 1, exactly one passes; the others see it.
func TestClaimsAreAtomic(t *testing.T) {
	j, err := incident.Open(filepath.Join(t.TempDir(), "j.db"), incident.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	var clusters []string
	for i := range 8 {
		clusters = append(clusters, fmt.Sprintf("c%d", i))
	}
	ids := openIncidents(t, j, clusters...)
	c := storeClaims{j: j}
	cfg := config.DefaultRemediation
	cfg.BlastRadius = config.BlastRadiusConfig{MaxClusters: 1}
	var passed sync.Map
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			_, ref, err := c.claim(t.Context(), id, clusters[i], func(others map[string]string) (string, *refusal) {
				return runGuards(guardInput{Now: time.Now(), Cluster: clusters[i], TotalClusters: 8, Cfg: cfg, Remediating: others})
			})
			require.NoError(t, err)
			if ref == nil {
				passed.Store(id, true)
			}
		})
	}
	wg.Wait()
	n := 0
	passed.Range(func(any, any) bool { n++; return true })
	require.Equal(t, 1, n, "exactly one cluster passes blast radius")
	cur, err := c.current(t.Context())
	require.NoError(t, err)
	require.Len(t, cur, 1)

	// A claim of an incident that closed without releasing is pruned by the next claim.
	for id := range cur {
		_, err := j.Update(t.Context(), id, func(inc *incident.Incident) error {
			inc.Step, inc.Outcome = incident.StepClosed, incident.OutcomeFailed
			return nil
		})
		require.NoError(t, err)
	}
	cur, err = c.current(t.Context())
	require.NoError(t, err)
	require.Empty(t, cur)
}
