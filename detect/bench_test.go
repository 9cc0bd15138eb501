package detect

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// BenchmarkConfirm measures verdict latency on loopback against the real simulator: every node
// probed (zmyctl status, raft state and netcheck exec'd through `zmysim ctl`, /metrics scraped
// twice, peer port dialled, /healthz and gRPC health), then decide(). Reported: p50 and p99 of
// one Confirm, in milliseconds. Run with: go test -run '^$' -bench BenchmarkConfirm -benchtime 30x ./detect/
func BenchmarkConfirm(b *testing.B) {
	for _, nodes := range []int{5, 50, 200} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			s := startSim(b, nodes)
			p, _ := s.prober()
			// Warm up: connections, page cache for the ctl binary, the first election.
			for range 2 {
				if _, err := p.Confirm(b.Context(), s.name); err != nil {
					b.Fatal(err)
				}
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				v, err := p.Confirm(b.Context(), s.name)
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				if v.Kind != incident.VerdictNotConfirmed || !allAnswered(v) {
					b.Fatalf("healthy cluster of %d: %s: %s", nodes, v.Kind, v.Reason)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// allAnswered reports whether every node answered control and data: a benchmark of verdicts
// reached by giving up at the budget would measure the budget, not the prober.
func allAnswered(v *incident.Verdict) bool {
	for _, e := range v.Evidence {
		if (e.Probe == ProbeControl || e.Probe == ProbeData) && !e.OK {
			return false
		}
	}
	return true
}
