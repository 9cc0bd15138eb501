package sim

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// apiCall sends one admin API request to node, on behalf of actor ("" for none).
func apiCall(ctx context.Context, t *testing.T, c *Cluster, node, method, path, body, actor string) (int, []byte, error) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(node).Admin+path, r)
	require.NoError(t, err)
	if actor != "" {
		req.Header.Set(zmy.ActorHeader, actor)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func apiError(t *testing.T, b []byte) zmy.APIErrorDetail {
	t.Helper()
	var e zmy.APIError
	require.NoError(t, json.Unmarshal(b, &e), "%s", b)
	return e.Error
}

// Every command of the admin API answers what `zmyctl … -o json` prints, and the audit log
// records it in zmyctl's words with the call and the actor.
func TestAdminAPICommands(t *testing.T) {
	c := startCluster(t, 3, 0)
	ctx := t.Context()
	call := func(method, path, body string) []byte {
		t.Helper()
		code, b, err := apiCall(ctx, t, c, "n1", method, path, body, "r1/inc-000001/j1")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code, "%s %s: %s", method, path, b)
		return b
	}
	var st zmy.QuorumStatus
	require.NoError(t, json.Unmarshal(call("GET", "/admin/v1/status?quorum=true", ""), &st))
	require.Equal(t, zmy.QuorumOK, st.Quorum)
	require.Len(t, st.Members, 3)

	rs, err := zmy.ParseRaftState(string(call("POST", "/admin/v1/raft/suspend", `{"force":true}`)))
	require.NoError(t, err)
	require.Equal(t, zmy.StateSuspended, rs.RaftState)
	require.Equal(t, "r1/inc-000001/j1", rs.SuspendedBy, "the actor header is who suspended the node")
	rs, err = zmy.ParseRaftState(string(call("GET", "/admin/v1/raft/state", "")))
	require.NoError(t, err)
	require.Equal(t, zmy.StateSuspended, rs.RaftState)

	snap, err := zmy.ParseSnapshot(string(call("POST", "/admin/v1/snapshot/save", `{"tag":"pre-recover-1"}`)))
	require.NoError(t, err)
	require.True(t, snap.Created)
	list, err := zmy.ParseSnapshotList(string(call("GET", "/admin/v1/snapshot/list", "")))
	require.NoError(t, err)
	require.Len(t, list, 1)
	rec, err := zmy.ParseRecover(string(call("POST", "/admin/v1/quorum/recover", `{"auto":true}`)))
	require.NoError(t, err)
	require.Len(t, rec.Majority, 3)
	rs, err = zmy.ParseRaftState(string(call("POST", "/admin/v1/raft/resume", `{}`)))
	require.NoError(t, err)
	require.NotEqual(t, zmy.StateSuspended, rs.RaftState)
	nc, err := zmy.ParseNetcheck(string(call("GET", "/admin/v1/debug/netcheck?full=true", "")))
	require.NoError(t, err)
	require.Len(t, nc.Peers, 2)

	audit := c.Audit()
	require.Len(t, audit, 8)
	require.Equal(t, "POST /admin/v1/raft/suspend", audit[1].API)
	require.Equal(t, []string{"raft", "suspend", "--force", "-o", "json"}, audit[1].Args)
	require.Equal(t, "r1/inc-000001/j1", audit[1].Actor)
	require.Equal(t, []string{"snapshot", "save", "--tag", "pre-recover-1", "-o", "json"}, audit[3].Args)
	require.Equal(t, "GET /admin/v1/debug/netcheck", audit[7].API)
	for _, e := range audit {
		require.Zero(t, e.Exit, "%v", e.Args)
	}
}

// Errors have one shape, {"error":{"code","message"}}, whose code maps onto zmyctl's exit code.
func TestAdminAPIErrors(t *testing.T) {
	c := startCluster(t, 3, 0)
	ctx := t.Context()
	for _, tc := range []struct {
		method, path, body string
		status             int
		code, message      string
	}{
		{"POST", "/admin/v1/raft/suspend", `{}`, 400, "usage", "raft suspend needs --force"},
		{"POST", "/admin/v1/raft/suspend", `{"force":3}`, 400, "usage", `field "force": want true, false or a string`},
		{"POST", "/admin/v1/raft/suspend", `not json`, 400, "usage", "decode request"},
		{"POST", "/admin/v1/snapshot/save", `{}`, 400, "usage", "snapshot save needs --tag"},
		{"GET", "/admin/v1/status", "", 400, "usage", "status needs --quorum"},
		{"POST", "/admin/v1/raft/explode", `{}`, 400, "usage", `unknown command "raft explode"`},
		{"POST", "/admin/v1/raft/suspend", `{"verbose":true,"force":true}`, 400, "usage", "unknown flag --verbose"},
	} {
		code, b, err := apiCall(ctx, t, c, "n1", tc.method, tc.path, tc.body, "")
		require.NoError(t, err)
		require.Equal(t, tc.status, code, "%s %s %s: %s", tc.method, tc.path, tc.body, b)
		e := apiError(t, b)
		require.Equal(t, tc.code, e.Code, "%s", b)
		require.Contains(t, e.Message, tc.message)
	}

	require.NoError(t, c.Fault([]string{"partition", "n1,n2/n3"}))
	code, b, err := apiCall(ctx, t, c, "n1", "POST", "/admin/v1/quorum/recover", `{"auto":true}`, "")
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "not_converged", apiError(t, b).Code)
	require.Contains(t, apiError(t, b).Message, "network not converged")
	require.NoError(t, c.Fault([]string{"partition", "n1/n2/n3"}))
	require.NoError(t, c.Fault([]string{"heal"}))
	_, b, err = apiCall(ctx, t, c, "n1", "POST", "/admin/v1/quorum/recover", `{"auto":true}`, "")
	require.NoError(t, err)
	require.Equal(t, "no_unique_majority", apiError(t, b).Code)
	a := c.Audit()
	require.Equal(t, zmy.ExitNoUniqueMajority, a[len(a)-1].Exit, "the audit keeps zmyctl's exit code")
}

// The injected ctl faults apply to the admin API as to zmyctl: fail, hang, slowness of one
// command, and a caller that goes away cancels a command not yet applied.
func TestAdminAPIFaults(t *testing.T) {
	c := startCluster(t, 3, 0)
	require.NoError(t, c.Fault([]string{"ctl", "n2", "fail"}))
	code, b, err := apiCall(t.Context(), t, c, "n2", "GET", "/admin/v1/raft/state", "", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusInternalServerError, code)
	require.Equal(t, zmy.APIErrorDetail{Code: "error", Message: "injected failure"}, apiError(t, b))

	require.NoError(t, c.Fault([]string{"ctl", "n2", "hang"}))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, _, err = apiCall(ctx, t, c, "n2", "POST", "/admin/v1/raft/suspend", `{"force":true}`, "")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "a hung node does not answer")
	waitFor(t, 2*time.Second, "the hang is audited", func() bool {
		a := c.Audit()
		return len(a) > 0 && a[len(a)-1].Exit == ExitNoAnswer && a[len(a)-1].API != ""
	})

	require.NoError(t, c.Fault([]string{"ctl", "n2", "ok"}))
	require.NoError(t, c.Fault([]string{"slow", "n2", "1m", "raft", "suspend"}))
	code, _, err = apiCall(t.Context(), t, c, "n2", "GET", "/admin/v1/raft/state", "", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "only the slowed command waits")
	sctx, scancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := apiCall(sctx, t, c, "n2", "POST", "/admin/v1/raft/suspend", `{"force":true}`, "")
		done <- err
	}()
	waitInFlight(t, c, "n2", "raft suspend")
	scancel()
	require.Error(t, <-done)
	requireAbandonedSuspend(t, c, "n2")
}

// Node ports lie below the kernel's ephemeral range, so that no outgoing connection (the
// responder keeps its admin API connections open) can take a port a node closed and will reopen.
func TestNodePortsAvoidTheEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	if lo <= stableLow+1000 {
		t.Skipf("ephemeral range starts at %d: no room below it", lo)
	}
	c := startCluster(t, 3, 0)
	for _, ep := range c.Endpoints().Nodes {
		for _, addr := range []string{ep.HTTPAddr, ep.PeerAddr, ep.GRPCAddr} {
			_, port, err := net.SplitHostPort(addr)
			require.NoError(t, err)
			p, err := strconv.Atoi(port)
			require.NoError(t, err)
			require.Less(t, p, lo, "%s of %s", addr, ep.ID)
			require.GreaterOrEqual(t, p, stableLow)
		}
	}
}

// A node's ports stay claimed (a lock file other simulators respect, in any process) while the
// cluster lives, closed or not, so that a port a kill closed is not taken by another simulator
// before the node reopens it; Close releases them.
func TestNodePortsStayClaimedUntilClose(t *testing.T) {
	lo := ephemeralLow()
	if lo <= stableLow+1000 {
		t.Skipf("ephemeral range starts at %d: no room below it", lo)
	}
	c := startCluster(t, 3, 0)
	_, portText, err := net.SplitHostPort(c.Endpoints().Nodes[0].PeerAddr)
	require.NoError(t, err)
	port, err := strconv.Atoi(portText)
	require.NoError(t, err)
	require.NoError(t, c.Kill("n1")) // every port of n1 closed
	f, ok := claimPort(port)
	require.False(t, ok, "a killed node's port is still claimed")
	require.Nil(t, f)
	require.NoError(t, c.Close())
	f, ok = claimPort(port)
	require.True(t, ok, "released by Close")
	require.NoError(t, f.Close())
}
