package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A 3-member cluster survives the loss of its leader, loses its quorum with a second member,
// and regains it when one comes back with its data.
func TestEtcdClusterMemberAndQuorumLoss(t *testing.T) {
	c := StartEtcdCluster(t, 3)
	require.Len(t, c.Endpoints(), 3)
	lead := c.Leader(10 * time.Second)
	require.GreaterOrEqual(t, lead, 0, "a leader among 3 healthy members")

	c.Members[lead].Kill()
	next := c.Leader(15 * time.Second)
	require.GreaterOrEqual(t, next, 0, "the two others elect a leader")
	require.NotEqual(t, lead, next)

	other := 3 - lead - next
	c.Members[other].Kill()
	ctx := context.Background()
	Eventually(t, 15*time.Second, "the last member loses its quorum", func() (bool, string) {
		return !c.Members[next].Healthy(ctx), "still healthy"
	})

	c.Members[lead].Start() // waits until healthy: a quorum again
	require.True(t, c.Members[next].Healthy(ctx))
}
