package receiver

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// FuzzDecodeWebhook feeds arbitrary bodies through what POST /webhook does before answering:
// decode, route, journal. Whatever the decoder accepts must satisfy the routing invariants and
// must journal and read back; nothing may panic. The seed corpus is testdata/fuzz and the
// webhook fixtures; `make test` fuzzes it briefly (make fuzz-short).
func FuzzDecodeWebhook(f *testing.F) {
	cfg, err := config.LoadBytes([]byte(testClusters))
	if err != nil {
		f.Fatal(err)
	}
	j, err := incident.Open(f.TempDir(), incident.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = j.Close() })
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

	f.Fuzz(func(t *testing.T, body []byte) {
		msg, err := decodeMessage(body)
		if err != nil {
			return
		}
		if msg.Version != "4" || msg.Data == nil || len(msg.Alerts) == 0 {
			t.Fatalf("decoder accepted version %q with %d alerts", msg.Version, len(msg.Alerts))
		}
		ds, err := toDeliveries(msg, cfg, now)
		if err != nil {
			return
		}
		if len(ds) != len(msg.Alerts) {
			t.Fatalf("%d alerts became %d deliveries", len(msg.Alerts), len(ds))
		}
		for i, d := range ds {
			if d.Cluster == "" || d.Alertname == "" {
				t.Fatalf("delivery %d without cluster or alertname: %+v", i, d)
			}
			if d.Alert.Status != string(model.AlertFiring) && d.Alert.Status != string(model.AlertResolved) {
				t.Fatalf("delivery %d with status %q", i, d.Alert.Status)
			}
			if d.Known != (d.Cluster == "east") {
				t.Fatalf("delivery %d: cluster %q known=%v", i, d.Cluster, d.Known)
			}
			if d.Truncated < 0 {
				t.Fatalf("negative truncated count %d", d.Truncated)
			}
		}
		res, err := j.Ingest(t.Context(), ds)
		if err != nil {
			return // e.g. a time outside years 0-9999: refused whole, nothing half-written
		}
		for i, r := range res {
			inc, err := j.Get(t.Context(), r.IncidentID)
			if err != nil {
				t.Fatalf("journaled incident %s does not read back: %v", r.IncidentID, err)
			}
			if inc.Cluster != ds[i].Cluster || inc.Alertname != ds[i].Alertname {
				t.Fatalf("delivery for %s/%s attached to %s/%s", ds[i].Cluster, ds[i].Alertname, inc.Cluster, inc.Alertname)
			}
			if len(inc.Alerts) == 0 {
				t.Fatalf("incident %s has no alerts", inc.ID)
			}
		}
	})
}
