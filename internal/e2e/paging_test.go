package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/zmyorg/zmy-responder/detect"
	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/stack"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// The paging contract, through a real Alertmanager running deploy/alertmanager.yml as shipped
// (only its receivers point at the responder and at a capture server standing in for on-call),
// the real daemon with its default silence settings, and the simulator. The test plays
// Prometheus: it posts ZMY_Quorum_Down to Alertmanager once the split-brain is real, and
// resolves it after a recovery.
//
// Every case holds the incident until after the on-call group's first flush (group_wait 1m),
// which is muted by the responder's silence: a hand-over after that flush is the case that used
// to page on-call only at the next group_interval (5m).
func TestPagingThroughShippedRouting(t *testing.T) {
	testenv.Binary(t, "prometheus-alertmanager", "alertmanager")
	// The cases mostly wait on Alertmanager's schedule: run them all at once, whatever
	// -parallel says (t.Run from several goroutines; none calls t.Parallel).
	var wg sync.WaitGroup
	run := func(name string, f func(t *testing.T)) { wg.Go(func() { t.Run(name, f) }) }
	defer wg.Wait()
	run("recovered pages nobody", func(t *testing.T) {
		p := startPaging(t, "pg-ok", 5, false)
		p.partitionAndFire(t, "n1,n2,n3/n4,n5")
		p.holdPastFirstFlush(t)
		p.fault(t, "heal")
		inc := p.waitClosed(t)
		require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
		require.Empty(t, p.oncall.all(), "on-call paged during a remediation that went well")

		// The silence outlives the close by recovered_grace, so Prometheus can resolve the alert
		// first. With the shipped 5s scrape and evaluation intervals it takes 5-10s after the
		// nodes recovered; the test resolves it 12s after the close, past one on-call
		// group_interval (10s), when an expired silence would already have paged.
		sil := p.onlySilence(t)
		require.True(t, sil.EndsAt.After(*inc.ClosedAt), "the silence ends after the close (recovered_grace)")
		require.False(t, sil.EndsAt.After(inc.ClosedAt.Add(31*time.Second)), "and within recovered_grace: %s", sil.EndsAt)
		p.waitAt(t, inc.ClosedAt.Add(12*time.Second), "Prometheus resolving the alert")
		p.postAlert(t, time.Now())
		// Alertmanager drops an aggregation group once it is empty, after the flush that handled
		// the resolution: from then on no notification for this alert can come.
		waitFor(t, t.Context(), 2*time.Minute, "Alertmanager to retire the alert's groups", func() (bool, error) {
			n, err := p.aggregationGroups(t.Context())
			return n == 0, err
		})
		require.Empty(t, p.oncall.all(), "on-call paged after a remediation that went well")
	})
	run("abort", func(t *testing.T) {
		p := startPaging(t, "pg-abort", 5, true)
		id := p.partitionAndFire(t, "n1,n2,n3/n4,n5")
		p.holdPastFirstFlush(t)
		handover := time.Now()
		require.NoError(t, stack.PostJSON(t.Context(), p.responderURL+"/api/v1/incidents/"+id+"/abort",
			map[string]string{"by": "paging-test", "reason": "by hand"}, nil))
		p.requirePagedWithin(t, handover, "abort")
		require.Equal(t, incident.OutcomeAborted, p.waitClosed(t).Outcome)
	})
	run("needs_human at arbitration", func(t *testing.T) {
		p := startPaging(t, "pg-split", 7, true)
		id := p.partitionAndFire(t, "n1,n2,n3/n4,n5/n6,n7")
		p.holdPastFirstFlush(t)
		p.fault(t, "heal")
		// Approval opens the gate; arbitration finds no unique majority in a 3|2|2 split and
		// hands over at once, so the delay is measured from the approval.
		handover := time.Now()
		require.NoError(t, stack.PostJSON(t.Context(), p.responderURL+"/api/v1/incidents/"+id+"/approve",
			map[string]string{"by": "paging-test", "reason": "network converged"}, nil))
		p.requirePagedWithin(t, handover, "needs_human")
		inc := p.waitClosed(t)
		require.Equal(t, incident.OutcomeNeedsHuman, inc.Outcome, inc.Reason)
		require.Contains(t, inc.Reason, "no unique majority")
	})
	run("responder killed", func(t *testing.T) {
		p := startPaging(t, "pg-kill", 5, true)
		p.partitionAndFire(t, "n1,n2,n3/n4,n5")
		p.holdPastFirstFlush(t)
		sil := p.onlySilence(t)
		require.Equal(t, "active", sil.Status.State)
		killed := time.Now()
		p.kill()
		t.Logf("silence ended %s after the kill", p.onlySilence(t).EndsAt.Sub(killed).Round(time.Second))
		p.requirePagedWithin(t, killed, "kill -9")
	})
}

// onCallWithin is the promise: a page reaches on-call at most this long after the responder
// gives up, by any road (deploy/alertmanager.yml, remediate/handover.go).
const onCallWithin = 60 * time.Second

// paging is one cluster with its own Alertmanager, on-call capture and responder.
type paging struct {
	cluster      string
	sim          *testenv.Sim
	amURL        string
	responderURL string
	cfgPath      string
	oncall       *capture
	daemon       *exec.Cmd
	exited       <-chan struct{}
	firedAt      time.Time
}

func startPaging(t *testing.T, cluster string, nodes int, requireApproval bool) *paging {
	t.Helper()
	p := &paging{cluster: cluster, oncall: newCapture(t)}
	amPort, port := testenv.FreePort(t), testenv.FreePort(t)
	p.amURL, p.responderURL = fmt.Sprintf("http://127.0.0.1:%d", amPort), fmt.Sprintf("http://127.0.0.1:%d", port)
	p.sim = testenv.StartSim(t, filepath.Join(binDir, "zmysim"), "--cluster", cluster, "--nodes", strconv.Itoa(nodes),
		"--write-rate", "100", "--election-delay", "100ms", "--alertmanager-url", p.amURL)

	token := filepath.Join(t.TempDir(), "webhook.token")
	require.NoError(t, os.WriteFile(token, []byte("paging-test-token\n"), 0o600))
	testenv.StartAlertmanager(t, amPort, shippedAlertmanagerConfig(t, p.responderURL, token, p.oncall.url))
	p.cfgPath = p.responderConfig(t, token, requireApproval)
	p.startResponder(t, port)
	return p
}

// shippedAlertmanagerConfig is deploy/alertmanager.yml with only its receivers' endpoints
// replaced: the responder's webhook at responderURL (same bearer token file scheme), on-call's
// e-mail by a webhook to the capture server.
func shippedAlertmanagerConfig(t *testing.T, responderURL, tokenFile, oncallURL string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "alertmanager.yml"))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	replaced := 0
	for _, r := range doc["receivers"].([]any) {
		rcv := r.(map[string]any)
		switch rcv["name"] {
		case "zmy-responder":
			wc := rcv["webhook_configs"].([]any)[0].(map[string]any)
			wc["url"] = responderURL + "/webhook"
			wc["http_config"].(map[string]any)["authorization"].(map[string]any)["credentials_file"] = tokenFile
			replaced++
		case "oncall":
			delete(rcv, "email_configs")
			rcv["webhook_configs"] = []any{map[string]any{"url": oncallURL, "send_resolved": true}}
			replaced++
		}
	}
	require.Equal(t, 2, replaced, "deploy/alertmanager.yml has the zmy-responder and oncall receivers")
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	return string(out)
}

// responderConfig is the simulator's generated config with the webhook token and short
// remediation intervals; the alertmanager section keeps its defaults (silence_duration,
// extend_every, recovered_grace), which are what this test is about.
func (p *paging) responderConfig(t *testing.T, tokenFile string, requireApproval bool) string {
	t.Helper()
	raw, err := os.ReadFile(p.sim.ResponderConfig)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	am, _ := doc["alertmanager"].(map[string]any)
	require.Equal(t, p.amURL, am["url"])
	require.Len(t, am, 1, "nothing but the url: the silence defaults are under test")
	doc["webhook"] = map[string]any{"auth": map[string]any{"bearer_token_file": tokenFile}}
	doc["api"] = map[string]any{"external_url": p.responderURL}
	doc["remediation"] = map[string]any{"golden_window": "15s", "command_timeout": "5s", "gate_timeout": "10m",
		"gate_poll": "200ms", "verify_timeout": "30s", "anti_flap": "1ms", "require_approval": requireApproval}
	doc["detection"] = map[string]any{"shard_tolerance": 3, "probe_timeout": "2s"}
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "zmy-responder.yml")
	require.NoError(t, os.WriteFile(path, out, 0o644))
	return path
}

func (p *paging) startResponder(t *testing.T, port int) {
	t.Helper()
	p.daemon = exec.Command(filepath.Join(binDir, "zmy-responder"), "--config.file="+p.cfgPath,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--grpc.listen-address=",
		"--storage.path="+t.TempDir(), "--log.level=warn")
	var err error
	p.exited, err = testenv.StartUntilReady(t, "zmy-responder", p.daemon, p.responderURL+"/-/ready", time.Minute)
	require.NoError(t, err)
}

// kill is kill -9 of the responder.
func (p *paging) kill() {
	_ = p.daemon.Process.Kill()
	<-p.exited
}

func (p *paging) fault(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "zmysim"),
		append([]string{"fault", "--admin-address", p.sim.Admin}, args...)...).CombinedOutput()
	require.NoError(t, err, "zmysim fault %v: %s", args, out)
}

// partitionAndFire splits the cluster, waits until the responder's own probes would confirm
// the split-brain (as Prometheus' rule waits for its `for`), posts ZMY_Quorum_Down to
// Alertmanager and returns the incident it opens.
func (p *paging) partitionAndFire(t *testing.T, groups string) string {
	t.Helper()
	p.fault(t, "partition", groups)
	cfg, err := config.Load(p.cfgPath)
	require.NoError(t, err)
	prober := detect.NewProber(cfg, detect.Options{Registerer: prometheus.NewRegistry()})
	defer prober.Close()
	confirmed := 0 // twice in a row: the divergence only grows from there
	waitFor(t, t.Context(), time.Minute, "the split-brain to be confirmable", func() (bool, error) {
		v, err := prober.Confirm(t.Context(), p.cluster)
		if err != nil || v.Kind != incident.VerdictConfirmed {
			confirmed = 0
			return false, err
		}
		confirmed++
		return confirmed == 2, nil
	})
	p.firedAt = time.Now()
	p.postAlert(t, p.firedAt.Add(10*time.Minute))
	var id string
	waitFor(t, t.Context(), time.Minute, "Alertmanager's delivery to open an incident", func() (bool, error) {
		incs, err := incidents(t.Context(), p.responderURL)
		for _, inc := range incs {
			if inc.Cluster == p.cluster {
				id = inc.ID
			}
		}
		return id != "", err
	})
	inc := p.waitIncident(t, id, "contained and silenced", func(inc *incident.Incident) bool {
		return !inc.Open() || (inc.ContainedAt != nil && hasSilence(inc))
	})
	require.True(t, inc.Open(), "incident %s closed early: %s %s", id, inc.Outcome, inc.Reason)
	return id
}

func hasSilence(inc *incident.Incident) bool {
	for _, s := range inc.Silences {
		if s.Action == "created" && s.ID != "" {
			return true
		}
	}
	return false
}

// postAlert sends ZMY_Quorum_Down for the cluster as Prometheus would, with the rule's labels;
// an endsAt in the past resolves it.
func (p *paging) postAlert(t *testing.T, endsAt time.Time) {
	t.Helper()
	alert := []map[string]any{{
		"labels": map[string]string{"alertname": "ZMY_Quorum_Down", "job": "zmy", "cluster": p.cluster,
			"severity": "critical", "sop": "SOP-ZMY-001"},
		"annotations":  map[string]string{"summary": "ZMY cluster " + p.cluster + " lost quorum"},
		"startsAt":     p.firedAt.UTC().Format(time.RFC3339Nano),
		"endsAt":       endsAt.UTC().Format(time.RFC3339Nano),
		"generatorURL": "http://prometheus.test/graph",
	}}
	require.NoError(t, stack.PostJSON(t.Context(), p.amURL+"/api/v2/alerts", alert, nil))
}

// holdPastFirstFlush lets the on-call group's first flush (group_wait 1m) and one more
// group_interval go by while the responder works, and checks nobody was paged meanwhile.
func (p *paging) holdPastFirstFlush(t *testing.T) {
	t.Helper()
	p.waitAt(t, p.firedAt.Add(time.Minute+15*time.Second), "the on-call group's first flush")
	require.Empty(t, p.oncall.all(), "on-call paged while the responder was working")
	require.Equal(t, "active", p.onlySilence(t).Status.State)
}

// waitAt waits until the clock reads at: what is waited for is Alertmanager's own schedule.
func (p *paging) waitAt(t *testing.T, at time.Time, what string) {
	t.Helper()
	select {
	case <-time.After(time.Until(at)):
	case <-t.Context().Done():
		t.Fatalf("test ended waiting for %s", what)
	}
}

// requirePagedWithin waits for the first on-call notification and requires it to come no
// sooner than the hand-over and no later than onCallWithin after it.
func (p *paging) requirePagedWithin(t *testing.T, handover time.Time, road string) {
	t.Helper()
	waitFor(t, t.Context(), 2*onCallWithin, "an on-call page", func() (bool, error) {
		return len(p.oncall.all()) > 0, nil
	})
	first := p.oncall.all()[0]
	delay := first.at.Sub(handover)
	t.Logf("%s: on-call paged %s after the hand-over (%s after the alert fired)", road,
		delay.Round(100*time.Millisecond), first.at.Sub(p.firedAt).Round(time.Second))
	require.Equal(t, "firing", first.Status)
	require.Equal(t, map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": p.cluster}, first.GroupLabels)
	require.Positive(t, delay, "paged before the hand-over")
	require.LessOrEqual(t, delay, onCallWithin, "%s: on-call paged too late", road)
}

func (p *paging) waitIncident(t *testing.T, id, what string, done func(*incident.Incident) bool) *incident.Incident {
	t.Helper()
	var inc incident.Incident
	waitFor(t, t.Context(), 2*time.Minute, "incident "+id+" "+what, func() (bool, error) {
		inc = incident.Incident{}
		if err := stack.GetJSON(t.Context(), p.responderURL+"/api/v1/incidents/"+id, &inc); err != nil {
			return false, err
		}
		return done(&inc), nil
	})
	return &inc
}

func (p *paging) waitClosed(t *testing.T) *incident.Incident {
	t.Helper()
	incs, err := incidents(t.Context(), p.responderURL)
	require.NoError(t, err)
	require.Len(t, incs, 1)
	return p.waitIncident(t, incs[0].ID, "closed", func(inc *incident.Incident) bool { return !inc.Open() })
}

// amSilence is the part of Alertmanager's silence the test reads.
type amSilence struct {
	ID     string    `json:"id"`
	EndsAt time.Time `json:"endsAt"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
}

// onlySilence is the one silence in Alertmanager: the responder's.
func (p *paging) onlySilence(t *testing.T) amSilence {
	t.Helper()
	var all []amSilence
	require.NoError(t, stack.GetJSON(t.Context(), p.amURL+"/api/v2/silences", &all))
	require.Len(t, all, 1)
	return all[0]
}

var aggrGroupsRE = regexp.MustCompile(`(?m)^alertmanager_dispatcher_aggregation_groups (\S+)$`)

func (p *paging) aggregationGroups(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.amURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return 0, err
	}
	m := aggrGroupsRE.FindSubmatch(b.Bytes())
	if m == nil {
		return 0, fmt.Errorf("alertmanager_dispatcher_aggregation_groups not in Alertmanager's metrics")
	}
	n, err := strconv.ParseFloat(string(m[1]), 64)
	return int(n), err
}

// capture is an HTTP server standing in for on-call's pager: it records every notification.
type capture struct {
	url   string
	mu    sync.Mutex
	notes []notification
}

type notification struct {
	at          time.Time
	Status      string            `json:"status"`
	GroupLabels map[string]string `json:"groupLabels"`
}

func newCapture(t *testing.T) *capture {
	t.Helper()
	c := &capture{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := notification{at: time.Now()}
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.notes = append(c.notes, n)
		c.mu.Unlock()
	}))
	t.Cleanup(hs.Close)
	c.url = hs.URL
	return c
}

func (c *capture) all() []notification {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]notification(nil), c.notes...)
}
