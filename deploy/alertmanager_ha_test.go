package deploy

import (
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func readYAMLMap(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal(b, &m))
	return m
}

// receiverByName splits an Alertmanager config's receivers into the named one and the rest.
func receiverByName(t *testing.T, cfg map[string]any, name string) (map[string]any, []any) {
	t.Helper()
	var found map[string]any
	var rest []any
	for _, r := range cfg["receivers"].([]any) {
		if m := r.(map[string]any); m["name"] == name {
			found = m
		} else {
			rest = append(rest, r)
		}
	}
	require.NotNil(t, found, "receiver %s", name)
	return found, rest
}

// alertmanager-ha.yml is alertmanager.yml with one responder webhook per replica: the same
// routes, inhibitions, global settings and other receivers, and for each replica of
// kubernetes-ha its pod's URL through the peers Service, with the single URL's settings.
func TestAlertmanagerHAOneWebhookPerReplica(t *testing.T) {
	single := readYAMLMap(t, "alertmanager.yml")
	ha := readYAMLMap(t, "alertmanager-ha.yml")
	for _, k := range []string{"global", "route", "inhibit_rules"} {
		require.Equal(t, single[k], ha[k], "%s differs between alertmanager.yml and alertmanager-ha.yml", k)
	}
	one, singleRest := receiverByName(t, single, "zmy-responder")
	many, haRest := receiverByName(t, ha, "zmy-responder")
	require.Equal(t, singleRest, haRest, "the other receivers are the same")

	// The replicas' URLs, from the manifests: <StatefulSet>-<i>.<peers Service>.<namespace>.svc.
	kust, objs := loadHA(t)
	var sts haStatefulSet
	require.NoError(t, objs["StatefulSet"].Spec.Decode(&sts))
	port := 0
	for _, p := range sts.Template.Spec.Containers[0].Ports {
		if p.Name == "http" {
			port = p.ContainerPort
		}
	}
	require.NotZero(t, port)
	var want []string
	for i := range sts.Replicas {
		want = append(want, fmt.Sprintf("http://%s-%d.%s.%s.svc:%d/webhook",
			objs["StatefulSet"].Metadata.Name, i, sts.ServiceName, kust.Namespace, port))
	}

	template := one["webhook_configs"].([]any)
	require.Len(t, template, 1)
	var got []string
	for _, w := range many["webhook_configs"].([]any) {
		w := w.(map[string]any)
		got = append(got, w["url"].(string))
		same := map[string]any{}
		for k, v := range w {
			if k != "url" {
				same[k] = v
			}
		}
		wantSame := map[string]any{}
		for k, v := range template[0].(map[string]any) {
			if k != "url" {
				wantSame[k] = v
			}
		}
		require.Equal(t, wantSame, same, "%s: send_resolved, max_alerts and the token as for one replica", w["url"])
	}
	require.Equal(t, want, got)
}
