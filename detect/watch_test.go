package detect

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

func TestFailedProbesNamesNodeProbeAndWhy(t *testing.T) {
	ev := []incident.Evidence{
		{Node: "n1", Probe: "control", OK: true},
		{Node: "n2", Probe: "netcheck", Error: "exit 1: timeout"},
		{Node: "n3", Probe: "control", Skipped: true, Error: "node breaker open"},
		{Probe: "etcd", Error: "no leader"},
		{Node: "n4", Probe: "tcp", Error: "refused"},
	}
	require.Equal(t, "n2/netcheck: exit 1: timeout; cluster/etcd: no leader; n4/tcp: refused", failedProbes(ev, 5))
	require.Equal(t, "n2/netcheck: exit 1: timeout; and 2 more", failedProbes(ev, 1))
	require.Empty(t, failedProbes(ev[:1], 5))
}
