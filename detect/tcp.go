package detect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// TCPReading is the responder's own view of a node's peer port (the SOP's `telnet <peer> 7070`).
type TCPReading struct {
	Addr      string
	Reachable bool
	Why       string // "refused", "timed out", … when not reachable
}

// ProbePeerPort opens a TCP connection to the node's peer port from the responder. Being refused
// (or unroutable) is a measured answer (fail), not a probe error: it is the network evidence
// itself. Running out of the caller's deadline is not: it says as much about us as about them.
func ProbePeerPort(ctx context.Context, t Target) Result {
	addr := t.Node.PeerAddr
	if addr == "" {
		return Result{Status: StatusError, Reason: "node has no peer_addr configured"}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil && over(ctx) {
		// Our own deadline ran out: an overloaded responder is no evidence of a partition. The
		// dial can report its timeout before ctx's timer has marked ctx done (on a busy machine,
		// a while before), so the deadline itself is what is checked.
		return Result{Status: StatusError, Err: err, Value: "no answer within the deadline",
			Reason: fmt.Sprintf("dial peer port %s of %s: %v", addr, t.Node.ID, err)}
	}
	if err != nil {
		why := dialWhy(err)
		return Result{Status: StatusFail, Err: err, Data: &TCPReading{Addr: addr, Why: why},
			Value:  "unreachable: " + why,
			Reason: fmt.Sprintf("peer port %s of %s %s: %v", addr, t.Node.ID, why, err)}
	}
	_ = conn.Close()
	return Result{Status: StatusOK, Data: &TCPReading{Addr: addr, Reachable: true}, Value: "connected to " + addr}
}

// dialWhy names a dial failure in the SOP's words.
func dialWhy(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route"
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	return "failed"
}
