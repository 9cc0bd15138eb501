package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/stack"
)

// BenchmarkPartitionToContainment is issue 6's figure: with 1s scrape and evaluation and the
// rule's `for: 15s`, the time from the partition to every node suspended, split into detection
// (Prometheus + Alertmanager: partition → the webhook is received) and response (the responder:
// received → all nodes verified suspended). A fresh stack per sample.
//
//	go test ./internal/e2e -run '^$' -bench PartitionToContainment -benchtime 3x
func BenchmarkPartitionToContainment(b *testing.B) {
	for _, names := range [][]string{{"prometheus"}, {"prometheus-alertmanager", "alertmanager"}} {
		if _, err := stack.LookPath(names...); err != nil {
			b.Skip(err)
		}
	}
	var total, detection, response []time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(b.Context(), 3*time.Minute)
		s, err := stack.Start(ctx, stack.Options{
			Dir: b.TempDir(), RepoRoot: repoRoot(), BinDir: binDir, Cluster: "e2e", Nodes: 5, Observability: true,
		})
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		ok := func() bool {
			defer s.Close()
			for deadline := time.Now().Add(30 * time.Second); ; {
				if n, _ := promCount(ctx, s.PrometheusURL, `up{job="zmy"} == 1`); n == 5 {
					break
				}
				if time.Now().After(deadline) {
					b.Error("Prometheus did not scrape the cluster")
					return false
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err := s.Fault(ctx, "partition", "n1,n2,n3/n4,n5"); err != nil {
				b.Error(err)
				return false
			}
			at := time.Now()
			for deadline := at.Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				incs, _ := incidents(ctx, s.ResponderURL)
				for _, inc := range incs {
					if inc.ContainedAt == nil || inc.Cluster != "e2e" {
						continue
					}
					var full incident.Incident
					if err := stack.GetJSON(ctx, s.ResponderURL+"/api/v1/incidents/"+inc.ID, &full); err != nil || len(full.Alerts) == 0 {
						continue
					}
					received := full.Alerts[0].ReceivedAt
					total = append(total, full.ContainedAt.Sub(at))
					detection = append(detection, received.Sub(at))
					response = append(response, full.ContainedAt.Sub(received))
					b.Logf("sample %d: total %s = detection %s + response %s", i, total[len(total)-1].Round(time.Millisecond),
						detection[len(detection)-1].Round(time.Millisecond), response[len(response)-1].Round(time.Millisecond))
					return true
				}
			}
			b.Error("no containment within 90s of the partition")
			return false
		}()
		cancel()
		if !ok {
			return
		}
	}
	b.ReportMetric(median(total).Seconds(), "total-s")
	b.ReportMetric(median(detection).Seconds(), "detection-s")
	b.ReportMetric(median(response).Seconds(), "response-s")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
