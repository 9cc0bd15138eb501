package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"

	"github.com/zmyorg/zmy-responder/internal/stack"
)

// deliverAlert posts the ZMY_Quorum_Down notification Alertmanager would send, for machines
// without Prometheus and Alertmanager installed.
func deliverAlert(ctx context.Context, url, cluster string) error {
	labels := template.KV{"alertname": "ZMY_Quorum_Down", "job": "zmy", "cluster": cluster, "severity": "critical"}
	msg := webhook.Message{
		Data: &template.Data{
			Receiver: "zmy-responder",
			Status:   "firing",
			Alerts: template.Alerts{{
				Status:      "firing",
				Labels:      labels,
				Annotations: template.KV{"summary": "ZMY cluster " + cluster + " lost quorum"},
				StartsAt:    time.Now().Add(-15 * time.Second),
				Fingerprint: "demo-" + cluster,
			}},
			GroupLabels:  template.KV{"alertname": "ZMY_Quorum_Down", "cluster": cluster},
			CommonLabels: labels,
			ExternalURL:  "http://demo.invalid/alertmanager",
		},
		Version:  "4",
		GroupKey: `{}:{alertname="ZMY_Quorum_Down", cluster="` + cluster + `"}`,
	}
	if err := stack.PostJSON(ctx, url, msg, nil); err != nil {
		return fmt.Errorf("deliver the alert: %w", err)
	}
	return nil
}
