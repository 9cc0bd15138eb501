// Package demo narrates one split-brain incident from partition to recovery on a simulated
// 5-node cluster: what `make demo` shows a newcomer. It starts the stack (internal/stack), injects
// a 3|2 partition, prints every step the responder takes as it happens, gives the approval a human
// would give (and says so), heals the network, and ends with the invariant report. With HA
// (`make demo-ha`) three responders share an etcd store; the demo kills the cluster's leader at
// the recovery gate and another replica finishes the incident.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/stack"
)

// Options configures the demo.
type Options struct {
	RepoRoot string
	BinDir   string
	Dir      string        // scratch directory for configs, data and logs
	Timeout  time.Duration // the whole demo; default 5m
	// Keep leaves the stack running after the incident until ctx is cancelled (Ctrl-C), so
	// that the addresses under "Where to look" answer; Timeout does not end it.
	Keep bool
	// Verbose prints every node command in full instead of one summary per command and step.
	Verbose bool
	// HA runs three responders on a Debian etcd (etcd-server) and kills the cluster's leader
	// (SIGKILL) at the recovery gate: another replica takes over and finishes.
	HA bool
	// Bare never starts Prometheus and Alertmanager, even when installed: the demo delivers the
	// webhook itself (what it does anyway when they are missing). Tests use it.
	Bare bool
}

// haLeaseTTL is the HA demo's --ha.lease-ttl: short, so the takeover is quick to watch.
const haLeaseTTL = 5 * time.Second

// Run runs the demo, writing the narration to w.
func Run(ctx context.Context, o Options, w io.Writer) error {
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	keepCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	n := &narrator{w: w, start: time.Now(), progress: progress{verbose: o.Verbose}}

	_, promErr := stack.LookPath("prometheus")
	_, amErr := stack.LookPath("prometheus-alertmanager", "alertmanager")
	observability := promErr == nil && amErr == nil && !o.Bare
	if !observability && !o.Bare {
		n.say("Prometheus and/or Alertmanager are not installed: the demo will deliver the")
		n.say("ZMY_Quorum_Down webhook itself, exactly as Alertmanager would. For the full chain:")
		n.say("  sudo apt-get install prometheus prometheus-alertmanager")
	}
	replicas := 1
	if o.HA {
		replicas = 3
		n.say("Starting a simulated 5-node ZMY cluster, etcd, and three zmy-responder replicas sharing")
		n.say("their incidents in it (--storage.backend=etcd, --ha.lease-ttl=%s), on 127.0.0.1 …", haLeaseTTL)
	} else {
		n.say("Starting a simulated 5-node ZMY cluster and zmy-responder on 127.0.0.1 …")
	}
	s, err := stack.Start(ctx, stack.Options{
		Dir: o.Dir, RepoRoot: o.RepoRoot, BinDir: o.BinDir, Cluster: "demo", Nodes: 5,
		Observability: observability, Replicas: replicas, LeaseTTL: haLeaseTTL,
	})
	if err != nil {
		return fmt.Errorf("start the demo stack: %w", err)
	}
	defer func() {
		n.say("Tearing everything down …")
		s.Close()
	}()
	for _, r := range s.Replicas {
		if r.Name == "" {
			n.say("  responder     %s  (API /api/v1/incidents, metrics /metrics)", r.URL)
		} else {
			n.say("  responder %s  %s  (API /api/v1/incidents, metrics /metrics)", r.Name, r.URL)
		}
	}
	if s.EtcdURL != "" {
		n.say("  etcd          %s  (incidents under /zmy-responder/)", s.EtcdURL)
	}
	if observability {
		n.say("  prometheus    %s", s.PrometheusURL)
		n.say("  alertmanager  %s", s.AlertmanagerURL)
	}
	n.say("  logs and configs in %s", o.Dir)

	var plan map[string]any
	if err := stack.GetJSON(ctx, s.ResponderURL+"/api/v1/clusters/demo/plan", &plan); err == nil {
		n.say("Dry run on the healthy cluster (GET /api/v1/clusters/demo/plan): verdict %v", verdictKind(plan))
	}
	if o.HA {
		lead, err := waitLeader(ctx, s, -1)
		if err != nil {
			return err
		}
		n.say("Replica %s leads cluster demo (zmy_responder_leader{cluster=\"demo\"} 1): only it probes and", s.Replicas[lead].Name)
		n.say("acts on the cluster; every replica takes webhooks and answers the API.")
	}

	n.say("")
	n.say("Injecting a network partition: {n1,n2,n3} | {n4,n5}. Both sides elect a leader and keep")
	n.say("accepting writes — the split-brain the SOP is about.")
	if err := s.Fault(ctx, "partition", "n1,n2,n3/n4,n5"); err != nil {
		return err
	}
	partitionAt := time.Now()
	if observability {
		n.say("Waiting for Prometheus to fire ZMY_Quorum_Down (rule `for: 15s`, the heartbeat timeout)")
		n.say("and for Alertmanager to deliver it to the responder …")
	} else {
		time.Sleep(2 * time.Second)
		for _, r := range s.Replicas {
			if err := deliverAlert(ctx, r.URL+"/webhook", "demo"); err != nil {
				return err
			}
		}
		if o.HA {
			n.say("Delivered ZMY_Quorum_Down{cluster=\"demo\",job=\"zmy\"} to POST /webhook of every replica,")
			n.say("as Alertmanager does with one URL per replica: they attach to one incident.")
		} else {
			n.say("Delivered ZMY_Quorum_Down{cluster=\"demo\",job=\"zmy\"} to POST /webhook.")
		}
	}

	var (
		atGate func(context.Context) error
		killed string
	)
	if o.HA {
		atGate = func(ctx context.Context) (err error) {
			killed, err = n.killLeader(ctx, s)
			return err
		}
	}
	inc, err := n.follow(ctx, s, partitionAt, atGate)
	if err != nil {
		return err
	}
	n.say("")
	n.say("Incident %s closed: outcome %s — %s", inc.ID, inc.Outcome, inc.Reason)
	if inc.ContainedAt != nil {
		n.say("Partition to all nodes suspended: %s", inc.ContainedAt.Sub(partitionAt).Round(10*time.Millisecond))
	}
	if o.HA {
		if err := n.commandsByReplica(ctx, s, partitionAt, killed, 5); err != nil {
			return err
		}
	}
	out, invErr := s.Zmysim(ctx, "invariants")
	n.say("Simulator invariant report (zmysim invariants): %s", strings.TrimSpace(out))
	if invErr != nil {
		return fmt.Errorf("invariants violated: %w", invErr)
	}
	n.say("")
	if o.Keep {
		n.say("Everything keeps running until you press Ctrl-C. Where to look:")
	} else {
		n.say("Where to look — while it runs: everything is torn down when the demo ends; to keep it")
		target, flags := "demo", ""
		if o.HA {
			target, flags = "demo-ha", " --ha"
		}
		n.say("running, `make %s DEMO_ARGS=--keep` (or bin/zmy-demo%s --keep) and press Ctrl-C when done:", target, flags)
	}
	live := liveURL(s)
	n.say("  curl -s %s/api/v1/incidents/%s | jq .", live, inc.ID)
	n.say("  curl -s %s/metrics | grep ^zmy_responder_", live)
	if o.HA {
		n.say("  curl -s %s/metrics | grep -E '^zmy_responder_leader'   # on each replica", live)
	}
	n.say("  %s audit --admin-address %s   # every command the nodes received", filepath.Join(o.BinDir, "zmysim"), s.SimAdmin)
	if observability {
		n.say("  %s/alerts and %s/#/silences", s.PrometheusURL, s.AlertmanagerURL)
	}
	n.say("  logs: %s/*.log", o.Dir)
	if inc.Outcome != incident.OutcomeRecovered {
		return fmt.Errorf("incident ended %s, not recovered", inc.Outcome)
	}
	if o.Keep {
		cancel() // the timeout bounds the incident, not how long the user looks around
		<-keepCtx.Done()
	}
	return nil
}

// follow prints the incident's timeline as it grows, heals and approves at the gate, and returns
// the closed incident. atGate, when set, runs once when the incident first waits at the gate,
// before the heal. It reads the incident from any live replica.
func (n *narrator) follow(ctx context.Context, s *stack.Stack, since time.Time, atGate func(context.Context) error) (*incident.Incident, error) {
	var (
		id       string
		healed   bool
		approved bool
	)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the incident: %w", ctx.Err())
		case <-tick.C:
		}
		if id == "" {
			incs, err := listIncidents(ctx, liveURL(s))
			if err != nil {
				continue
			}
			for _, inc := range incs {
				if inc.Cluster == "demo" && inc.Alertname == "ZMY_Quorum_Down" && inc.OpenedAt.After(since.Add(-time.Second)) {
					id = inc.ID
					n.say("Incident %s opened for %s (alert received after %s).", inc.ID, inc.Alertname,
						time.Since(since).Round(100*time.Millisecond))
				}
			}
			if id == "" {
				continue
			}
		}
		var inc incident.Incident
		if err := stack.GetJSON(ctx, liveURL(s)+"/api/v1/incidents/"+id, &inc); err != nil {
			continue
		}
		for _, l := range n.progress.next(&inc) {
			n.say("%s", l)
		}
		if inc.Verdict != nil && inc.Step == incident.StepAwaitingRecovery && !healed {
			if atGate != nil {
				if err := atGate(ctx); err != nil {
					return nil, err
				}
				atGate = nil
			}
			n.say("")
			n.say("The responder waits at the recovery gate (SOP-ZMY-005): network converged, etcd healthy,")
			n.say("and a human's approval. The demo plays the network team and heals the partition …")
			if err := s.Fault(ctx, "heal"); err != nil {
				return nil, err
			}
			healed = true
			time.Sleep(time.Second)
		}
		if healed && !approved && inc.Step == incident.StepAwaitingRecovery {
			n.say("… and the on-call engineer: the demo approves the recovery ON YOUR BEHALF via")
			base := liveURL(s)
			n.say("  POST %s/api/v1/incidents/%s/approve", base, id)
			body := map[string]string{"by": "make-demo", "reason": "demo: network team confirmed the link is back"}
			if err := stack.PostJSON(ctx, base+"/api/v1/incidents/"+id+"/approve", body, nil); err != nil {
				n.say("  approve failed: %v (will retry)", err)
			} else {
				approved = true
			}
		}
		if !inc.Open() {
			return &inc, nil
		}
	}
}

// listIncidents accepts both a bare JSON list and {"incidents": [...]}.
func listIncidents(ctx context.Context, base string) ([]incident.Incident, error) {
	var raw json.RawMessage
	if err := stack.GetJSON(ctx, base+"/api/v1/incidents", &raw); err != nil {
		return nil, err
	}
	raw = bytes.TrimSpace(raw)
	var list []incident.Incident
	if len(raw) > 0 && raw[0] == '[' {
		err := json.Unmarshal(raw, &list)
		return list, err
	}
	var wrapped struct {
		Incidents []incident.Incident `json:"incidents"`
	}
	err := json.Unmarshal(raw, &wrapped)
	return wrapped.Incidents, err
}

func verdictKind(plan map[string]any) any {
	if v, ok := plan["verdict"].(map[string]any); ok {
		return v["kind"]
	}
	return "?"
}

type narrator struct {
	w        io.Writer
	start    time.Time
	progress progress
}

func (n *narrator) say(format string, args ...any) {
	fmt.Fprintf(n.w, "%6.1fs  %s\n", time.Since(n.start).Seconds(), fmt.Sprintf(format, args...))
}

// DefaultDir is a fresh scratch directory for one demo run.
func DefaultDir() (string, error) { return os.MkdirTemp("", "zmy-demo-") }
