package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// ctl fault modes of a node's admin API.
const (
	ctlOK   = "ok"
	ctlFail = "fail"
	ctlHang = "hang"
)

// command is a parsed zmyctl invocation.
type command struct {
	words []string // command words, flags removed
	json  bool
	force bool
	auto  bool
	full  bool
	quo   bool
	tag   string
}

// parseCommand splits zmyctl arguments into words and flags. `-o json` / `--output json`
// may come before or after the words, as the contract allows.
func parseCommand(args []string) (command, error) {
	var c command
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		var err error
		var out string
		switch {
		case a == "-o" || a == "--output":
			out, err = next()
		case strings.HasPrefix(a, "-o=") || strings.HasPrefix(a, "--output="):
			out = a[strings.IndexByte(a, '=')+1:]
		case a == "--tag":
			c.tag, err = next()
			if err == nil && c.tag == "" {
				err = errors.New("--tag must not be empty")
			}
		case strings.HasPrefix(a, "--tag="):
			c.tag = strings.TrimPrefix(a, "--tag=")
		case a == "--force":
			c.force = true
		case a == "--auto":
			c.auto = true
		case a == "--full":
			c.full = true
		case a == "--quorum":
			c.quo = true
		case strings.HasPrefix(a, "-"):
			err = fmt.Errorf("unknown flag %s", a)
		default:
			c.words = append(c.words, a)
		}
		if err != nil {
			return c, err
		}
		switch out {
		case "":
		case "json":
			c.json = true
		case "text":
			c.json = false
		default:
			return c, fmt.Errorf("unknown output format %q (json or text)", out)
		}
	}
	return c, nil
}

// exec runs one zmyctl command on node i on behalf of actor and renders what zmyctl would print.
func (c *Cluster) exec(i int, args []string, actor string) execResponse {
	cmd, err := parseCommand(args)
	if err != nil {
		return usage(err.Error())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	m := c.m
	id := m.nodes[i].id
	switch strings.Join(cmd.words, " ") {
	case "status":
		if !cmd.quo {
			return usage("status needs --quorum")
		}
		st := m.quorumStatus(i)
		return render(cmd.json, st, fmt.Sprintf("%s leader_id=%s term=%d node=%s\n", st.Quorum, st.LeaderID, st.Term, id))

	case "raft state":
		st := c.reportState(i)
		return render(true, st, "")

	case "raft suspend":
		if !cmd.force {
			return usage("raft suspend needs --force")
		}
		m.suspend(i, actor)
		st := c.reportState(i)
		return render(cmd.json, st, fmt.Sprintf("suspended node=%s\n", id))

	case "raft resume":
		m.resume(i, now)
		st := c.reportState(i)
		return render(cmd.json, st, fmt.Sprintf("resumed node=%s raft_state=%s\n", id, st.RaftState))

	case "snapshot save":
		if cmd.tag == "" {
			return usage("snapshot save needs --tag")
		}
		snap, _ := m.snapshotSave(i, cmd.tag, now)
		return render(cmd.json, snap, fmt.Sprintf("snapshot tag=%s node=%s created=%t entries=%d\n",
			snap.Tag, id, snap.Created, snap.Entries))

	case "snapshot list":
		snaps := m.snapshotList(i)
		var b strings.Builder
		for _, s := range snaps {
			fmt.Fprintf(&b, "tag=%s node=%s entries=%d at=%s\n", s.Tag, id, s.Entries, s.At.UTC().Format(time.RFC3339))
		}
		return render(cmd.json, snaps, b.String())

	case "quorum recover":
		if !cmd.auto {
			return usage("quorum recover needs --auto")
		}
		res, err := m.recover(now, actor)
		switch {
		case errors.Is(err, ErrNotConverged):
			return failure(zmy.ExitNotConverged, err)
		case errors.Is(err, ErrNoUniqueMajority):
			return failure(zmy.ExitNoUniqueMajority, err)
		case err != nil:
			return failure(zmy.ExitError, err)
		}
		return render(cmd.json, res, fmt.Sprintf("recovered majority=%s leader=%s term=%d discarded=%d\n",
			strings.Join(res.Majority, ","), res.Leader, res.Term, res.Discarded))

	case "debug netcheck":
		nc := m.netcheck(i, c.peers)
		if cmd.json {
			return render(true, nc, "")
		}
		// One line per peer: on a 200-node cluster this is the biggest answer a node gives, so
		// it is only written in the form asked for.
		var b strings.Builder
		for _, p := range nc.Peers {
			fmt.Fprintf(&b, "peer=%s addr=%s reachable=%t rtt_ms=%s firewall_blocked=%t\n",
				p.Peer, p.Addr, p.Reachable, strconv.FormatFloat(p.RTTMillis, 'f', 3, 64), p.FirewallBlocked)
		}
		fmt.Fprintf(&b, "partition_score=%.2f node=%s\n", nc.PartitionScore, id)
		return render(false, nc, b.String())
	}
	return usage(fmt.Sprintf("unknown command %q", strings.Join(cmd.words, " ")))
}

// reportState is the node's raft state as told to a caller. Once a caller has been told the
// node is suspended, a write it accepts is a violation.
func (c *Cluster) reportState(i int) zmy.RaftState {
	st := c.m.state(i)
	if st.RaftState == zmy.StateSuspended {
		c.m.nodes[i].suspendReported = true
	}
	return st
}

func render(asJSON bool, v any, text string) execResponse {
	if !asJSON {
		return execResponse{Exit: zmy.ExitOK, Stdout: text}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return failure(zmy.ExitError, fmt.Errorf("encode answer: %w", err))
	}
	return execResponse{Exit: zmy.ExitOK, Stdout: string(b) + "\n"}
}

func usage(msg string) execResponse {
	return execResponse{Exit: zmy.ExitUsage, Stderr: "error: " + msg + "\n"}
}

func failure(code int, err error) execResponse {
	return execResponse{Exit: code, Stderr: "error: " + err.Error() + "\n"}
}

// commandWords is a command's words without its flags: "snapshot save" for
// `snapshot save --tag T -o json`; the raw arguments when they do not parse.
func commandWords(args []string) string {
	c, err := parseCommand(args)
	if err != nil {
		return strings.Join(args, " ")
	}
	return strings.Join(c.words, " ")
}
