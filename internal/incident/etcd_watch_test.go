package incident_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/incident/storetest"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// A replica watching the store hears of an incident another replica opened and of a decision
// written there (an abort); the channel closes with its context.
func TestEtcdChangesSignalsOtherReplicasWrites(t *testing.T) {
	endpoint := testenv.StartEtcd(t)
	opts := incident.EtcdOptions{Endpoints: []string{endpoint}, Prefix: "/zr"}
	watcher, writer := openEtcd(t, opts), openEtcd(t, opts)
	defer watcher.Close()
	defer writer.Close()
	ctx := t.Context()
	changes := watcher.Changes(ctx)
	signalled := func() bool {
		select {
		case <-changes:
			return true
		case <-time.After(10 * time.Second):
			return false
		}
	}
	// The watch is in place once a write is seen: write until one is.
	require.Eventually(t, func() bool {
		_, err := writer.Ingest(ctx, []incident.Delivery{storetest.Delivery("east", "a", "firing", t0)})
		require.NoError(t, err)
		select {
		case <-changes:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	}, 20*time.Second, time.Millisecond, "an incident opened by another replica is signalled")
	select { // signals coalesce in a one-slot channel: one read empties it
	case <-changes:
	default:
	}

	_, err := writer.Update(ctx, "inc-000001", func(inc *incident.Incident) error {
		inc.Abort = &incident.Approval{By: "alice", Reason: "taking over", At: t0}
		return nil
	})
	require.NoError(t, err)
	require.True(t, signalled(), "an abort written by another replica is signalled")
	got, err := watcher.Get(ctx, "inc-000001")
	require.NoError(t, err)
	require.NotNil(t, got.Abort)

	cctx, cancel := context.WithCancel(ctx)
	closed := watcher.Changes(cctx)
	cancel()
	require.Eventually(t, func() bool {
		select {
		case _, ok := <-closed:
			return !ok
		default:
			return false
		}
	}, 10*time.Second, 10*time.Millisecond, "the channel closes with its context")
}
