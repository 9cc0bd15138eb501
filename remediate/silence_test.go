package remediate

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

func testSilencer(t *testing.T, url string) *silencer {
	t.Helper()
	cfg := &config.Config{Alertmanager: config.DefaultAlertmanager, Webhook: config.DefaultWebhook,
		Silences: config.DefaultSilences, API: config.APIConfig{ExternalURL: "http://responder.example:9095/"}}
	cfg.Alertmanager.URL = url
	cfg.Alertmanager.Timeout = model.Duration(2 * time.Second)
	s, err := newSilencer(cfg)
	require.NoError(t, err)
	return s
}

func testIncident(id, cluster string) *incident.Incident {
	return &incident.Incident{ID: id, Cluster: cluster, Alertname: "ZMY_Quorum_Down",
		Alerts: []incident.AlertRecord{{Status: "firing", Labels: map[string]string{
			"alertname": "ZMY_Quorum_Down", "cluster": cluster, "job": "zmy"}}}}
}

func TestSilenceLifecycleAgainstAlertmanager(t *testing.T) {
	am := startAlertmanager(t)
	s := testSilencer(t, am.URL)
	ctx := t.Context()
	inc := testIncident("inc-000042", "alpha")
	now := time.Now()

	id, ends, err := s.Create(ctx, inc, now)
	require.NoError(t, err)
	require.WithinDuration(t, now.Add(time.Duration(config.DefaultAlertmanager.SilenceDuration)), ends, time.Second)

	got, err := s.get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "active", state(got))
	require.Equal(t, "zmy-responder", deref(got.CreatedBy))
	require.Contains(t, deref(got.Comment), "inc-000042")
	require.Contains(t, deref(got.Comment), "http://responder.example:9095/api/v1/incidents/inc-000042")
	require.Len(t, got.Matchers, 2)
	require.Equal(t, "cluster", deref(got.Matchers[0].Name))
	require.Equal(t, "alpha", deref(got.Matchers[0].Value))
	require.False(t, deref(got.Matchers[0].IsRegex))
	require.Equal(t, "alertname", deref(got.Matchers[1].Name))
	require.Equal(t, "ZMY_.*", deref(got.Matchers[1].Value))
	require.True(t, deref(got.Matchers[1].IsRegex))
	parsed, ok := incidentOf(deref(got.Comment))
	require.True(t, ok)
	require.Equal(t, "inc-000042", parsed)

	found, err := s.Find(ctx, "alpha", "inc-000042")
	require.NoError(t, err)
	require.NotNil(t, found)
	require.Equal(t, id, deref(found.ID))
	none, err := s.Find(ctx, "alpha", "inc-000043")
	require.NoError(t, err)
	require.Nil(t, none)
	none, err = s.Find(ctx, "beta", "inc-000042")
	require.NoError(t, err)
	require.Nil(t, none, "same id, another cluster: another deployment's incident")

	// Our own silence is not a takeover.
	f, err := s.Foreign(ctx, inc)
	require.NoError(t, err)
	require.Nil(t, f)

	// Extending keeps the one silence: same id, later end.
	later := now.Add(time.Minute)
	newID, ends2, err := s.Extend(ctx, id, later)
	require.NoError(t, err)
	require.Equal(t, id, newID)
	require.True(t, ends2.After(ends))
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)

	require.NoError(t, s.Expire(ctx, id))
	got, err = s.get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "expired", state(got))
	require.NoError(t, s.Expire(ctx, id), "expiring twice is fine")
	_, _, err = s.Extend(ctx, id, later)
	require.ErrorIs(t, err, errSilenceGone)
	found, err = s.Find(ctx, "alpha", "inc-000042")
	require.NoError(t, err)
	require.Nil(t, found, "an expired silence is not adopted")
}

// postForeign creates a silence as a human would, through the same API.
func postForeign(t *testing.T, s *silencer, by, cluster string) string {
	return postHuman(t, s, by, cluster, "looking into it")
}

// postHuman posts a human's silence on the cluster's ZMY_Quorum_Down with comment.
func postHuman(t *testing.T, s *silencer, by, cluster, comment string) string {
	t.Helper()
	tr, fa := true, false
	now := time.Now()
	id, err := s.post(t.Context(), "", models.Silence{
		Comment: ptr(comment), CreatedBy: ptr(by),
		StartsAt: ptr(strfmt.DateTime(now)), EndsAt: ptr(strfmt.DateTime(now.Add(15 * time.Minute))),
		Matchers: models.Matchers{
			{Name: ptr("alertname"), Value: ptr("ZMY_Quorum_Down"), IsRegex: &fa, IsEqual: &tr},
			{Name: ptr("cluster"), Value: ptr(cluster), IsRegex: &fa, IsEqual: &tr},
		},
	})
	require.NoError(t, err)
	return id
}

func TestForeignSilenceAgainstAlertmanager(t *testing.T) {
	am := startAlertmanager(t)
	s := testSilencer(t, am.URL)
	ctx := t.Context()
	inc := testIncident("inc-000001", "alpha")

	postForeign(t, s, "bob", "beta") // another cluster: not ours to care about
	f, err := s.Foreign(ctx, inc)
	require.NoError(t, err)
	require.Nil(t, f)

	id := postForeign(t, s, "alice", "alpha")
	f, err = s.Foreign(ctx, inc)
	require.NoError(t, err)
	require.NotNil(t, f)
	require.Equal(t, id, f.id)
	require.Equal(t, "alice", f.by)
}

func TestSilencerAlertmanagerDown(t *testing.T) {
	s := testSilencer(t, fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)))
	start := time.Now()
	_, _, err := s.Create(t.Context(), testIncident("inc-000001", "alpha"), time.Now())
	require.Error(t, err)
	require.Less(t, time.Since(start), 3*time.Second, "bounded by alertmanager.timeout")
}

func TestCovers(t *testing.T) {
	tr, fa := true, false
	m := func(name, value string, regex, equal bool) *models.Matcher {
		return &models.Matcher{Name: &name, Value: &value, IsRegex: &regex, IsEqual: &equal}
	}
	lset := map[string]string{"cluster": "alpha", "alertname": "ZMY_Quorum_Down"}
	for name, tc := range map[string]struct {
		ms   models.Matchers
		want bool
	}{
		"cluster equal":      {models.Matchers{m("cluster", "alpha", fa, tr)}, true},
		"other cluster":      {models.Matchers{m("cluster", "beta", fa, tr)}, false},
		"regex":              {models.Matchers{m("cluster", "al.*", tr, tr), m("alertname", "ZMY_.*", tr, tr)}, true},
		"negative matcher":   {models.Matchers{m("cluster", "alpha", fa, fa)}, false},
		"other alert only":   {models.Matchers{m("alertname", "Disk.*", tr, tr)}, false},
		"no matchers at all": {nil, false},
	} {
		require.Equal(t, tc.want, covers(&models.GettableSilence{Silence: models.Silence{Matchers: tc.ms}}, lset), name)
	}
}
