package remediate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/detect"
	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/sim"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// crashPoints are where the daemon SIGKILLs itself: step boundaries (right after the
// transition was journaled, before the step acted) and the middle of steps.
var crashPoints = [][]string{
	{"enter:confirming", "enter:silencing", "enter:containing", "containing:mid", "snapshotting:saved", "enter:arbitrating"},
	{"silence:created", "enter:snapshotting", "awaiting_recovery:polled", "arbitrating:recovered", "resuming:mid", "closing"},
}

// kill -9 of the real daemon at each crash point; after a restart on the same journal the
// incident completes as recovered, the audit log shows the SOP's order with exactly one
// suspend per node, the invariants stay clean and the incident had exactly one silence.
func TestCrashAtEachPointCompletesAfterRestart(t *testing.T) {
	am := startAlertmanager(t)
	for g, points := range crashPoints {
		t.Run(fmt.Sprintf("group%d", g), func(t *testing.T) {
			t.Parallel()
			name := fmt.Sprintf("crash%d", g)
			s := startSim(t, name, 5, am.URL)
			cfgPath := daemonConfig(t, s, nil)
			cfg, err := config.Load(cfgPath)
			require.NoError(t, err)
			probe := detect.NewProber(cfg, detect.Options{})
			storage := filepath.Join(t.TempDir(), "data")
			for i, point := range points {
				t.Run(strings.ReplaceAll(point, ":", "_"), func(t *testing.T) {
					crashOnce(t, s, probe, am, cfgPath, storage, point, i)
				})
			}
		})
	}
}

func crashOnce(t *testing.T, s *simCluster, probe *detect.Prober, am *testenv.Alertmanager, cfgPath, storage, point string, i int) {
	from := len(s.audit(t))
	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	waitProbeConfirmed(t, probe, s.name)

	d := startDaemon(t, cfgPath, storage, point)
	pointStart := time.Now().Add(-time.Second) // journal clock, same machine; a little slack
	startsAt := time.Now().Add(time.Duration(i) * time.Second)
	// The daemon may die before it answers (the alert is journaled before the runbook is
	// kicked): then, like Alertmanager, send it again after the restart.
	code, body, err := d.tryWebhook(s.name, "firing", "am-0", startsAt)
	resend := err != nil || code != http.StatusOK
	delivery := fmt.Sprintf("webhook answered %d %q, err %v", code, body, err)
	healed := false
	// Until the failpoint kills it, heal once containment is done so the gate can open.
	var last *incident.Incident
	var seen string // what the API said last, for the failure message
	for deadline := time.Now().Add(45 * time.Second); ; {
		select {
		case <-d.exited:
		case <-time.After(50 * time.Millisecond):
			inc, err := latestOrErr(d)
			seen = fmt.Sprintf("latest incident %s opened %v (point started %v), err %v", idOf(inc), openedAt(inc), pointStart, err)
			if inc != nil && inc.OpenedAt.After(pointStart) {
				last = inc
				if inc.Step == incident.StepAwaitingRecovery && !healed {
					s.fault(t, "heal")
					healed = true
				}
			}
			if last != nil && !last.Open() {
				t.Fatalf("incident %s closed (%s: %s) before failpoint %s", last.ID, last.Outcome, last.Reason, point)
			}
			require.True(t, time.Now().Before(deadline), "failpoint %s not reached in 45s (last step %v); %s; %s",
				point, stepOf(last), delivery, seen)
			continue
		}
		break
	}
	require.True(t, d.killedBySIGKILL(t, time.Second), "the daemon did not die at %s", point)

	d = startDaemon(t, cfgPath, storage, "")
	if resend {
		d.webhook(t, s.name, "firing", "am-0", startsAt)
	}
	var inc *incident.Incident
	deadline := time.Now().Add(45 * time.Second)
	for {
		inc = latest(d)
		require.NotNil(t, inc)
		require.True(t, inc.OpenedAt.After(pointStart), "the incident of this point is missing")
		if inc.Step == incident.StepAwaitingRecovery && !healed {
			s.fault(t, "heal")
			healed = true
		}
		if !inc.Open() {
			break
		}
		require.True(t, time.Now().Before(deadline), "incident %s stuck at %s after the restart", inc.ID, inc.Step)
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, "%s: %s", point, inc.Reason)
	d.kill()

	audit := s.audit(t)[from:]
	requireSOPOrderAfterCrash(t, audit, 5)
	recordedRecovery(t, audit, inc)
	s.requireNoViolations(t)

	// Exactly one silence named this incident, and it is expired.
	all, err := testSilencer(t, am.URL).List(t.Context())
	require.NoError(t, err)
	n := 0
	for _, sil := range all {
		if id, ok := incidentOf(deref(sil.Comment)); ok && id == inc.ID && strings.Contains(deref(sil.Comment), s.name) {
			n++
			require.Equal(t, "expired", state(sil))
		}
	}
	require.Equal(t, 1, n, "silences of %s", inc.ID)
}

// latest is the newest incident the daemon knows, or nil if it does not answer.
func latest(d *daemon) *incident.Incident {
	inc, _ := latestOrErr(d)
	return inc
}

// latestOrErr is the daemon's newest incident, or why there is none.
func latestOrErr(d *daemon) (*incident.Incident, error) {
	select {
	case <-d.exited:
		return nil, errors.New("daemon exited")
	default:
	}
	// The list is summaries: find the newest, then read it whole.
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(d.url + "/api/v1/incidents?limit=1")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Incidents []incident.Summary `json:"incidents"`
	}
	if err := jsonDecode(resp, &out); err != nil {
		return nil, err
	}
	if len(out.Incidents) == 0 {
		return nil, errors.New("no incidents")
	}
	resp, err = c.Get(d.url + "/api/v1/incidents/" + out.Incidents[0].ID)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var inc incident.Incident
	if err := jsonDecode(resp, &inc); err != nil {
		return nil, err
	}
	return &inc, nil
}

func idOf(inc *incident.Incident) string {
	if inc == nil {
		return "<none>"
	}
	return inc.ID
}

func openedAt(inc *incident.Incident) any {
	if inc == nil {
		return "-"
	}
	return inc.OpenedAt
}

func stepOf(inc *incident.Incident) any {
	if inc == nil {
		return "<none>"
	}
	return inc.Step
}

// requireSOPOrderAfterCrash checks a remediation interrupted by a crash: the SOP's order (no
// resume before the recover, every snapshot saved before it) and each mutation applied exactly
// once per node across the crash — one suspend, one snapshot save and one resume per node, one
// recover for the cluster — counting the commands the nodes applied (exit 0), not the ones a
// dead zmyctl abandoned.
func requireSOPOrderAfterCrash(t *testing.T, audit []sim.AuditEntry, nodes int) {
	t.Helper()
	applied := map[string]map[string]int{} // command -> node -> times applied
	saved := map[string]bool{}
	recovers := 0
	for _, e := range audit {
		if e.Exit != 0 || !isMutating(e) {
			continue
		}
		cmd := strings.Join(commandWords(e), " ")
		if applied[cmd] == nil {
			applied[cmd] = map[string]int{}
		}
		applied[cmd][e.Node]++
		switch cmd {
		case "snapshot save":
			require.Zero(t, recovers, "snapshot save on %s after the recover", e.Node)
			saved[e.Node] = true
		case "quorum recover":
			require.Len(t, saved, nodes, "recover before every node saved its snapshot")
			recovers++
		case "raft resume":
			require.Equal(t, 1, recovers, "raft resume on %s before quorum recover", e.Node)
		}
	}
	require.Equal(t, 1, recovers, "quorum recover applied %d times", recovers)
	for _, cmd := range []string{"raft suspend", "snapshot save", "raft resume"} {
		require.Len(t, applied[cmd], nodes, "%s: nodes that applied it", cmd)
		for n, c := range applied[cmd] {
			require.Equal(t, 1, c, "%s applied %d times on %s", cmd, c, n)
		}
	}
}

// commandWords are an audited command's words without flags: [raft suspend].
func commandWords(e sim.AuditEntry) []string {
	var words []string
	for i := 0; i < len(e.Args); i++ {
		switch a := e.Args[i]; {
		case a == "-o" || a == "--output" || a == "--tag":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			words = append(words, a)
		}
	}
	return words
}

// recordedRecovery checks that the incident records the recover the nodes really applied (what
// it discarded): after a crash with the recover in flight, not a second one's.
func recordedRecovery(t *testing.T, audit []sim.AuditEntry, inc *incident.Incident) {
	t.Helper()
	require.NotNil(t, inc.Recovery)
	for _, e := range audit {
		if e.Exit == 0 && isCmd(e, "quorum", "recover") {
			var rr struct {
				Term      uint64 `json:"term"`
				Discarded int    `json:"discarded"`
			}
			require.NoError(t, json.Unmarshal([]byte(e.Output), &rr), e.Output)
			require.Equal(t, rr.Term, inc.Recovery.Term)
			require.Equal(t, rr.Discarded, inc.Recovery.Discarded)
			return
		}
	}
	t.Fatal("no recover applied")
}

func waitProbeConfirmed(t *testing.T, p *detect.Prober, cluster string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := p.Confirm(t.Context(), cluster)
		if err == nil && v.Kind == incident.VerdictConfirmed {
			time.Sleep(time.Second) // see rig.waitConfirmed
			return
		}
		require.True(t, time.Now().Before(deadline), "split-brain not confirmed after 20s: %+v %v", v, err)
		time.Sleep(100 * time.Millisecond)
	}
}
