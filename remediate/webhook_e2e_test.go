package remediate

import (
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/detect"
	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// The 3|2 partition through the real daemon: webhooks from three Alertmanager replicas,
// approval through the HTTP API, heal, recovered; one silence, expired; metrics exported.
func TestWebhookEndToEndWithApproval(t *testing.T) {
	am := startAlertmanager(t)
	s := startSim(t, "rho", 5, am.URL)
	cfgPath := daemonConfig(t, s, map[string]map[string]any{"remediation": {"require_approval": true}})
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	d := startDaemon(t, cfgPath, filepath.Join(t.TempDir(), "data"), "")

	s.fault(t, "partition", "n1,n2,n3/n4,n5")
	waitProbeConfirmed(t, detect.NewProber(cfg, detect.Options{}), "rho")
	startsAt := time.Now().Add(-time.Minute)
	for i := range 9 {
		d.webhook(t, "rho", "firing", []string{"am-0", "am-1", "am-2"}[i%3], startsAt)
	}
	var inc *incident.Incident
	require.Eventually(t, func() bool {
		inc = latest(d)
		return inc != nil && (inc.Step == incident.StepAwaitingRecovery || !inc.Open())
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, incident.StepAwaitingRecovery, inc.Step, inc.Reason)
	require.Len(t, d.incidents(t), 1, "nine deliveries, one incident")

	// Approval needs who and why; the receiver answers 400 without.
	code, _ := d.post(t, "/api/v1/incidents/"+inc.ID+"/approve", map[string]string{"by": "alice"})
	require.Equal(t, http.StatusBadRequest, code)
	code, body := d.post(t, "/api/v1/incidents/"+inc.ID+"/approve", map[string]string{"by": "alice", "reason": "network team confirmed"})
	require.Equal(t, http.StatusOK, code, string(body))
	s.fault(t, "heal")
	require.Eventually(t, func() bool {
		inc = d.incident(t, inc.ID)
		return !inc.Open()
	}, 40*time.Second, 50*time.Millisecond)
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	require.Equal(t, "alice", inc.Approvals[0].By)
	require.NotEmpty(t, inc.Commands)

	requireSOPOrder(t, s.audit(t), 5)
	s.requireNoViolations(t)
	all, err := testSilencer(t, am.URL).List(t.Context())
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, "expired", state(all[0]))

	// Approving a closed incident is a conflict.
	code, _ = d.post(t, "/api/v1/incidents/"+inc.ID+"/approve", map[string]string{"by": "alice", "reason": "again"})
	require.Equal(t, http.StatusConflict, code)

	resp, err := http.Get(d.url + "/metrics")
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`zmy_responder_incidents_total{cluster="rho",outcome="recovered"} 1`,
		`zmy_responder_time_to_containment_seconds_count{cluster="rho"} 1`,
		`zmy_responder_breaker_state{cluster="rho",state="closed"} 1`,
		`zmy_responder_breaker_state{cluster="rho",state="open"} 0`,
		`zmy_responder_incident_step{cluster="rho",step="awaiting_recovery"} 0`,
		`zmy_responder_steps_total{result="ok",step="containing"} 1`,
	} {
		require.Contains(t, string(raw), want)
	}
}
