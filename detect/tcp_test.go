package detect

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// closedAddr is a loopback host:port that refuses connections: a port just released.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestProbePeerPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()

	r := run(t.Context(), ProbeTCP, Target{Node: config.NodeConfig{ID: "n1", PeerAddr: l.Addr().String()}})
	require.Equal(t, StatusOK, r.Status)
	require.True(t, r.Data.(*TCPReading).Reachable)

	r = run(t.Context(), ProbeTCP, Target{Node: config.NodeConfig{ID: "n2", PeerAddr: closedAddr(t)}})
	require.Equal(t, StatusFail, r.Status, "refusal is a measured answer, not a probe error")
	tr := r.Data.(*TCPReading)
	require.False(t, tr.Reachable)
	require.Equal(t, "refused", tr.Why)
	require.Contains(t, r.Reason, "n2 refused")

	// A black-holed address (TEST-NET-1 is never routed) ends at the caller's deadline at the
	// latest; some sandboxes refuse it at once instead, which is fine too.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	r = run(ctx, ProbeTCP, Target{Node: config.NodeConfig{ID: "n3", PeerAddr: "192.0.2.1:7070"}})
	require.Less(t, time.Since(start), time.Second)
	if ctx.Err() != nil {
		require.Equal(t, StatusError, r.Status, "running out of our own deadline is no evidence of a partition")
		require.Nil(t, r.Data)
	} else {
		require.Equal(t, StatusFail, r.Status)
		require.NotEmpty(t, r.Data.(*TCPReading).Why)
	}

	// The dial times out at our deadline before ctx's timer has marked it done, as on a machine
	// too busy to run the timer on time: still our deadline, still no evidence.
	r = run(pastDeadline{t.Context()}, ProbeTCP, Target{Node: config.NodeConfig{ID: "n3", PeerAddr: "192.0.2.1:7070"}})
	require.Equal(t, StatusError, r.Status, r.Reason)
	require.Nil(t, r.Data)

	r = run(t.Context(), ProbeTCP, Target{Node: config.NodeConfig{ID: "n4"}})
	require.Equal(t, StatusError, r.Status)
	require.Contains(t, r.Reason, "no peer_addr")
}

// pastDeadline is a context whose deadline has passed while Err still says nothing: the moment
// between a deadline and its timer firing.
type pastDeadline struct{ context.Context }

func (pastDeadline) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }
