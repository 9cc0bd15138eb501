package receiver

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// messageOf is a webhook payload holding one firing alert per label set.
func messageOf(labels ...template.KV) []byte {
	msg := webhook.Message{
		Data:    &template.Data{Receiver: "zmy-responder", Status: "firing", ExternalURL: "http://am-0:9093"},
		Version: "4", GroupKey: `{}:{alertname="ZMY_Quorum_Down"}`,
	}
	for i, l := range labels {
		msg.Alerts = append(msg.Alerts, template.Alert{Status: "firing", Labels: l,
			StartsAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Fingerprint: "000000000000000" + string(rune('a'+i))})
	}
	b, err := json.Marshal(msg)
	if err != nil {
		panic(err)
	}
	return b
}

// A label value too long for a journal key is a permanent input error: answering 503 made
// Alertmanager retry forever and lost the valid alerts of the same notification. The value is
// cut to config.MaxNameBytes and noted; every alert is journaled; the answer is 200.
func TestWebhookOversizedNames(t *testing.T) {
	env := newEnv(t, testClusters)
	longA := strings.Repeat("x", 40000)
	longB := strings.Repeat("x", 39999) + "y" // same first kilobyte as longA
	longName := "ZMY_" + strings.Repeat("é", 20000)
	body := messageOf(
		template.KV{"alertname": "ZMY_Quorum_Down", "cluster": "east"},
		template.KV{"alertname": "ZMY_Quorum_Down", "cluster": longA},
		template.KV{"alertname": "ZMY_Quorum_Down", "cluster": longB},
		template.KV{"alertname": longName, "cluster": "east"},
	)
	code, resp := env.do(t, http.MethodPost, "/webhook", body)
	require.Equal(t, http.StatusOK, code, "%s", resp)

	incs, err := env.j.List(t.Context(), false)
	require.NoError(t, err)
	byGroup := map[string]*incident.Incident{}
	for _, inc := range incs {
		require.LessOrEqual(t, len(inc.Cluster), config.MaxNameBytes)
		require.LessOrEqual(t, len(inc.Alertname), config.MaxNameBytes)
		byGroup[inc.Cluster[:min(len(inc.Cluster), 4)]+"/"+inc.Alertname[:4]] = inc
		require.Len(t, inc.Alerts, 1, "every alert is journaled, each once")
	}
	require.Len(t, incs, 4, "the valid alert, two distinct long clusters, one long alertname")

	valid := byGroup["east/ZMY_"]
	require.NotNil(t, valid)
	require.Equal(t, "ZMY_Quorum_Down", valid.Alertname)
	require.True(t, valid.Open(), "the valid alert opened its incident")

	var cut []*incident.Incident
	for _, inc := range incs {
		if strings.HasPrefix(inc.Cluster, "xxxx") {
			cut = append(cut, inc)
		}
	}
	require.Len(t, cut, 2)
	require.NotEqual(t, cut[0].Cluster, cut[1].Cluster, "values sharing their first kilobyte stay apart")
	for _, inc := range cut {
		require.Equal(t, incident.OutcomeUnknownCluster, inc.Outcome)
		require.Contains(t, inc.Cluster, "…[40000 bytes, sha256 ")
		require.Len(t, inc.Alerts[0].Labels["cluster"], 40000, "the alert keeps the full label")
		require.True(t, hasEvent(inc, "the cluster label", "40000 bytes, over the 1024-byte limit"), "%+v", inc.Timeline)
	}

	var named *incident.Incident
	for _, inc := range incs {
		if inc.Cluster == "east" && inc != valid {
			named = inc
		}
	}
	require.NotNil(t, named)
	require.True(t, strings.HasPrefix(longName, strings.Split(named.Alertname, "…[")[0]), "cut on a UTF-8 boundary")
	require.True(t, json.Valid([]byte(`"`+named.Alertname+`"`)))
	require.True(t, hasEvent(named, "the alertname label", "40004 bytes"), "%+v", named.Timeline)
	require.Equal(t, longName, named.Alerts[0].Labels["alertname"])

	// A resend attaches to the same incidents and adds no second note.
	code, resp = env.do(t, http.MethodPost, "/webhook", body)
	require.Equal(t, http.StatusOK, code, "%s", resp)
	again, err := env.j.List(t.Context(), false)
	require.NoError(t, err)
	require.Len(t, again, 4)
	for _, inc := range again {
		require.Equal(t, 2, inc.Alerts[0].Deliveries)
		n := 0
		for _, e := range inc.Timeline {
			if strings.Contains(e.Message, "over the 1024-byte limit") {
				n++
			}
		}
		require.LessOrEqual(t, n, 1, inc.ID)
	}
}

func hasEvent(inc *incident.Incident, parts ...string) bool {
	for _, e := range inc.Timeline {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(e.Message, p)
		}
		if all {
			return true
		}
	}
	return false
}
