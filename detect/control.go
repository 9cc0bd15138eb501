package detect

import (
	"context"
	"errors"
	"fmt"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// ProbeControlPlane runs `zmyctl status --quorum` on the node: quorum, leader_id, term.
// QUORUM_LOST is a fail: the node answered, and the answer is what the SOP's control check asks.
func ProbeControlPlane(ctx context.Context, t Target) Result {
	qs, res, err := t.Zmyctl.Status(ctx, t.Node)
	if err != nil {
		return zmyctlError(res, err)
	}
	r := Result{Status: StatusOK, Raw: stdout(res), Data: qs,
		Value: fmt.Sprintf("%s leader_id=%s term=%d", qs.Quorum, orNone(qs.LeaderID), qs.Term)}
	if qs.Quorum != zmy.QuorumOK {
		r.Status, r.Reason = StatusFail, qs.Quorum+" reported"
	}
	return r
}

// ProbeRaft runs `zmyctl raft state` on the node: raft_state, leader_id, term. A candidate or a
// node that knows no leader is a fail.
func ProbeRaft(ctx context.Context, t Target) Result {
	rs, res, err := t.Zmyctl.RaftState(ctx, t.Node)
	if err != nil {
		return zmyctlError(res, err)
	}
	r := Result{Status: StatusOK, Raw: stdout(res), Data: rs,
		Value: fmt.Sprintf("raft_state=%s leader_id=%s term=%d", rs.RaftState, orNone(rs.LeaderID), rs.Term)}
	switch {
	case rs.RaftState == zmy.StateCandidate:
		r.Status, r.Reason = StatusFail, "node is a candidate: no leader elected"
	case rs.LeaderID == "":
		r.Status, r.Reason = StatusFail, "node knows no leader"
	}
	return r
}

// zmyctlError is a zmyctl call that produced no usable answer; the reason is the driver's error,
// which already names the command, the node and the exit.
func zmyctlError(res *zmy.Result, err error) Result {
	r := Result{Status: StatusError, Raw: stdout(res), Err: err, Reason: err.Error()}
	if res != nil && r.Raw == "" {
		r.Raw = res.Stderr
	}
	switch {
	case errors.Is(err, zmy.ErrTimeout):
		r.Value = "timeout"
	case errors.Is(err, zmy.ErrUnreachable):
		r.Value = "unreachable"
	case errors.Is(err, zmy.ErrMalformed):
		r.Value = "malformed output"
	}
	return r
}

func stdout(res *zmy.Result) string {
	if res == nil {
		return ""
	}
	return res.Stdout
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
