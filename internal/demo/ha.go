package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/sim"
	"github.com/zmyorg/zmy-responder/internal/stack"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// liveURL is the API of the first replica still running: any replica answers it.
func liveURL(s *stack.Stack) string {
	for _, r := range s.Replicas {
		if r.Process != nil && !r.Exited() {
			return r.URL
		}
	}
	return s.ResponderURL
}

// waitLeader waits until a replica other than not leads the demo cluster and returns it.
func waitLeader(ctx context.Context, s *stack.Stack, not int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		if i := s.Leader(ctx, "demo"); i >= 0 && i != not {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("waiting for a replica to lead cluster demo: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// killLeader kills the demo cluster's leader as a host loss would (SIGKILL, its zmyctl
// children with it), narrates the takeover and returns the killed replica's name.
func (n *narrator) killLeader(ctx context.Context, s *stack.Stack) (string, error) {
	lead, err := waitLeader(ctx, s, -1)
	if err != nil {
		return "", err
	}
	r := s.Replicas[lead]
	n.say("")
	n.say("The leader, %s, now dies: kill -9 %d (its host is lost). The cluster stays suspended: nothing", r.Name, r.Pid())
	n.say("resumes it blind. The other replicas wait for %s's etcd lease (%s) to expire …", r.Name, haLeaseTTL)
	killed := time.Now()
	r.Kill()
	next, err := waitLeader(ctx, s, lead)
	if err != nil {
		return "", err
	}
	n.say("Replica %s leads cluster demo %s after the kill; it resumes the incident from the journal in", s.Replicas[next].Name,
		time.Since(killed).Round(100*time.Millisecond))
	n.say("etcd, asks the nodes where they are, and carries on — never repeating a command %s made.", r.Name)
	return r.Name, nil
}

// commandsByReplica prints which replica sent which commands to the nodes, from the simulator's
// audit (each runbook command carries ZMY_ACTOR=<replica>/<incident>/<token>), and checks the
// takeover: the killed replica resumed no node, another one resumed every node.
func (n *narrator) commandsByReplica(ctx context.Context, s *stack.Stack, since time.Time, killed string, nodes int) error {
	entries, err := audit(ctx, s)
	if err != nil {
		return err
	}
	counts := map[string]map[string]int{} // replica -> command -> times
	for _, e := range entries {
		if e.Time.Before(since) {
			continue
		}
		a, ok := zmy.ParseActor(e.Actor)
		if !ok {
			continue
		}
		if counts[a.Replica] == nil {
			counts[a.Replica] = map[string]int{}
		}
		counts[a.Replica][zmyctlWords(e.Args)]++
	}
	n.say("")
	n.say("Commands each replica sent the nodes (zmysim audit, by the ZMY_ACTOR they carried):")
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		var parts []string
		for _, cmd := range slices.Sorted(maps.Keys(counts[name])) {
			parts = append(parts, fmt.Sprintf("%s ×%d", cmd, counts[name][cmd]))
		}
		n.say("  %s: %s", name, strings.Join(parts, ", "))
	}
	const resume = "raft resume"
	if c := counts[killed][resume]; c > 0 {
		return fmt.Errorf("the killed leader %s resumed %d nodes", killed, c)
	}
	for name, cmds := range counts {
		if name != killed && cmds[resume] == nodes {
			return nil
		}
	}
	return fmt.Errorf("no replica but the killed %s resumed all %d nodes", killed, nodes)
}

// audit is every command the simulated nodes received, oldest first (zmysim audit).
func audit(ctx context.Context, s *stack.Stack) ([]sim.AuditEntry, error) {
	out, err := s.Zmysim(ctx, "audit")
	if err != nil {
		return nil, err
	}
	var entries []sim.AuditEntry
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e sim.AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("zmysim audit: %w", err)
		}
		entries = append(entries, e)
	}
	return entries, sc.Err()
}
