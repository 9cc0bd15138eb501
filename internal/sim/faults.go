package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Partition splits the network into groups. Every node must be listed exactly once. Each
// group elects its own leader; nodes outside the responder's side close their peer port.
func (c *Cluster) Partition(groups [][]string) error {
	return c.update(func(m *model, _ time.Time) error { return m.setPartition(groups) })
}

// Heal removes the partition (firewall rules stay).
func (c *Cluster) Heal() error {
	return c.update(func(m *model, _ time.Time) error { return m.setPartition([][]string{m.ids()}) })
}

// Kill closes every port of the node; the rest of the cluster carries on without it.
func (c *Cluster) Kill(id string) error {
	return c.onNode(id, func(n *nodeState) { n.killed = true })
}

// Restart reopens a killed node's ports (the same ones); it catches up with its group.
func (c *Cluster) Restart(id string) error {
	return c.onNode(id, func(n *nodeState) { n.killed = false })
}

// SetClock sets the node's clock offset from real time.
func (c *Cluster) SetClock(id string, skew time.Duration) error {
	return c.onNode(id, func(n *nodeState) { n.skew = skew })
}

// Firewall turns a rule blocking the node's peer port on or off: the node is cut from every
// peer (a group of its own) and everyone's netcheck reports the block as deliberate.
func (c *Cluster) Firewall(id string, on bool) error {
	return c.onNode(id, func(n *nodeState) { n.firewall = on })
}

// SetCtl makes the node's admin API answer normally ("ok"), fail with HTTP 500 ("fail") or
// never answer ("hang").
func (c *Cluster) SetCtl(id, mode string) error {
	switch mode {
	case ctlOK, ctlFail, ctlHang:
	default:
		return fmt.Errorf("ctl mode %q: want ok, fail or hang", mode)
	}
	return c.onNode(id, func(n *nodeState) { n.ctlMode = mode })
}

// SetSlow delays every admin answer of the node by d (0 to stop).
func (c *Cluster) SetSlow(id string, d time.Duration) error { return c.SetSlowCommand(id, d, "") }

// SetSlowCommand delays the node's answers to one command by d (its words, e.g. "snapshot
// save"; "" for every command). A caller that goes away meanwhile cancels the command.
func (c *Cluster) SetSlowCommand(id string, d time.Duration, words string) error {
	if d < 0 {
		return fmt.Errorf("slow %s: delay must not be negative", id)
	}
	return c.onNode(id, func(n *nodeState) { n.slow, n.slowCmd = d, words })
}

// SetLoad sets the write rate across the cluster, in writes per second; 0 pauses writes.
func (c *Cluster) SetLoad(rate float64) error {
	if rate < 0 {
		return fmt.Errorf("load: rate must not be negative, got %v", rate)
	}
	c.mu.Lock()
	c.rate = rate
	c.mu.Unlock()
	return nil
}

// InjectWrite makes the node accept one write as if it led its group, even when suspended:
// a lying node. It exists so tests can prove write_after_suspend is caught.
func (c *Cluster) InjectWrite(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, err := c.m.nodeIndex(id)
	if err != nil {
		return fmt.Errorf("force-write: %w", err)
	}
	c.m.accept(i, time.Now())
	return nil
}

func (c *Cluster) onNode(id string, fn func(n *nodeState)) error {
	return c.update(func(m *model, _ time.Time) error {
		i, err := m.nodeIndex(id)
		if err != nil {
			return err
		}
		fn(m.nodes[i])
		return nil
	})
}

// Fault applies a fault written as the `zmysim fault` command line takes it, e.g.
// ["partition", "n1,n2,n3/n4,n5"], ["clock", "n3", "+800ms"], ["ctl", "n2", "hang"].
func (c *Cluster) Fault(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no fault given")
	}
	want := func(n int, form string) error {
		if len(args) != n+1 {
			return fmt.Errorf("usage: %s %s", args[0], form)
		}
		return nil
	}
	switch args[0] {
	case "partition":
		if err := want(1, "n1,n2,n3/n4,n5"); err != nil {
			return err
		}
		var groups [][]string
		for g := range strings.SplitSeq(args[1], "/") {
			groups = append(groups, strings.Split(g, ","))
		}
		return c.Partition(groups)
	case "heal":
		if err := want(0, ""); err != nil {
			return err
		}
		return c.Heal()
	case "kill", "restart", "force-write":
		if err := want(1, "NODE"); err != nil {
			return err
		}
		switch args[0] {
		case "kill":
			return c.Kill(args[1])
		case "restart":
			return c.Restart(args[1])
		}
		return c.InjectWrite(args[1])
	case "clock":
		if err := want(2, "NODE +800ms|-1s|0"); err != nil {
			return err
		}
		d, err := time.ParseDuration(strings.TrimPrefix(args[2], "+"))
		if err != nil {
			return fmt.Errorf("clock %s: %w", args[1], err)
		}
		return c.SetClock(args[1], d)
	case "firewall":
		if err := want(2, "NODE on|off"); err != nil {
			return err
		}
		if args[2] != "on" && args[2] != "off" {
			return fmt.Errorf("firewall %s: want on or off, got %q", args[1], args[2])
		}
		return c.Firewall(args[1], args[2] == "on")
	case "ctl":
		if err := want(2, "NODE ok|fail|hang"); err != nil {
			return err
		}
		return c.SetCtl(args[1], args[2])
	case "slow":
		if len(args) < 3 {
			return fmt.Errorf("usage: slow NODE 300ms [COMMAND WORDS, e.g. snapshot save]")
		}
		d, err := time.ParseDuration(args[2])
		if err != nil {
			return fmt.Errorf("slow %s: %w", args[1], err)
		}
		return c.SetSlowCommand(args[1], d, strings.Join(args[3:], " "))
	case "load":
		if err := want(1, "WRITES_PER_SECOND"); err != nil {
			return err
		}
		r, err := strconv.ParseFloat(args[1], 64)
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		return c.SetLoad(r)
	}
	return fmt.Errorf("unknown fault %q (partition, heal, kill, restart, clock, firewall, ctl, slow, load, force-write)", args[0])
}

// NodeInfo is one node's endpoints and current state, as `zmysim nodes` prints it.
type NodeInfo struct {
	NodeEndpoints
	Role     string `json:"role"` // leader, follower, candidate, suspended, killed
	Term     uint64 `json:"term"`
	LeaderID string `json:"leader_id"`
	Quorum   bool   `json:"quorum"`
	Firewall bool   `json:"firewall"`
	PeerOpen bool   `json:"peer_open"`
	Clock    string `json:"clock_skew"`
	Ctl      string `json:"ctl"`
	Slow     string `json:"slow,omitempty"`
	SlowCmd  string `json:"slow_command,omitempty"` // the command Slow applies to; all when empty
	// InFlight lists the admin commands the node received and has not answered yet.
	InFlight []string          `json:"in_flight,omitempty"`
	Shards   map[string]uint64 `json:"shards"`
	Entries  int               `json:"entries"`
	Accepted uint64            `json:"writes_accepted"`
	Rejected uint64            `json:"writes_rejected"`
	// Overwritten counts entries the node lost by taking another leader's log without a
	// quorum recover: the data a flawed self-merge throws away.
	Overwritten uint64   `json:"entries_overwritten"`
	Snapshots   []string `json:"snapshots,omitempty"`
}

// Nodes returns every node's endpoints and state.
func (c *Cluster) Nodes() []NodeInfo {
	eps := make([]NodeEndpoints, len(c.nodes))
	for i, s := range c.nodes {
		eps[i] = s.endpoints()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.m
	out := make([]NodeInfo, len(m.nodes))
	for i, n := range m.nodes {
		info := NodeInfo{
			NodeEndpoints: eps[i],
			Role:          "killed",
			Term:          n.term,
			Firewall:      n.firewall,
			PeerOpen:      m.peerOpen(i),
			Clock:         n.skew.String(),
			Ctl:           n.ctlMode,
			Shards:        m.shardMap(n.log.counts),
			Entries:       n.log.len(),
			Accepted:      n.accepted,
			Rejected:      n.rejected,
			Overwritten:   n.overwritten,
			Snapshots:     append([]string(nil), n.snapOrder...),
		}
		if n.slow > 0 {
			info.Slow, info.SlowCmd = n.slow.String(), n.slowCmd
		}
		info.InFlight = slices.Clone(n.inFlight)
		if !n.killed {
			info.Role, info.LeaderID = m.raftState(i)
			info.Quorum = m.quorum(i)
		}
		out[i] = info
	}
	return out
}
