package incident_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/incident/storetest"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// BenchmarkPrune: pruning 10,000 closed incidents (5 alerts each) while a sender ingests one
// alert at a time into an open incident; reports the prune's duration and the sender's latency
// during it against the same sender alone just before. etcd is a real etcd-server process.
//
//	go test ./internal/incident/ -run '^$' -bench BenchmarkPrune -benchtime 1x
func BenchmarkPrune(b *testing.B) {
	b.Run("bbolt", func(b *testing.B) {
		benchPrune(b, func(now func() time.Time) storetest.Store {
			j, err := incident.Open(filepath.Join(b.TempDir(), incident.FileName), incident.Options{Now: now})
			if err != nil {
				b.Fatal(err)
			}
			return j
		})
	})
	b.Run("etcd", func(b *testing.B) {
		endpoint := testenv.StartEtcdServer(b).Endpoint()
		n := 0
		benchPrune(b, func(now func() time.Time) storetest.Store {
			n++
			s, err := incident.OpenEtcd(b.Context(), incident.EtcdOptions{Endpoints: []string{endpoint}, Prefix: fmt.Sprintf("/bench/%d/", n), Now: now})
			if err != nil {
				b.Fatal(err)
			}
			return s
		})
	})
}

func benchPrune(b *testing.B, open func(now func() time.Time) storetest.Store) {
	const incidents, alerts = 10000, 5
	ctx := b.Context()
	for range b.N {
		b.StopTimer()
		at := time.Now().Add(-60 * 24 * time.Hour)
		s := open(func() time.Time { return at })
		var ds []incident.Delivery
		for i := range incidents {
			for k := range alerts {
				d := storetest.Delivery(fmt.Sprintf("c%05d", i), fmt.Sprintf("f%d", k), "firing", at)
				d.Known = false // closed at once: unknown_cluster
				ds = append(ds, d)
			}
		}
		for c := range slices.Chunk(ds, 1000) {
			if _, err := s.Ingest(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
		at = time.Now()
		before := sendWhile(b, ctx, s, func() { <-time.After(3 * time.Second) })
		var took time.Duration
		var pruned int
		var err error
		during := sendWhile(b, ctx, s, func() {
			b.StartTimer()
			start := time.Now()
			pruned, err = s.Prune(ctx, at.Add(-30*24*time.Hour))
			took = time.Since(start)
			b.StopTimer()
		})
		if err != nil || pruned != incidents {
			b.Fatalf("pruned %d of %d: %v", pruned, incidents, err)
		}
		_ = s.Close()
		b.ReportMetric(took.Seconds(), "prune-s")
		b.ReportMetric(p99ms(before), "ingest-p99-alone-ms")
		b.ReportMetric(p99ms(during), "ingest-p99-during-ms")
		b.ReportMetric(float64(slices.Max(during).Microseconds())/1000, "ingest-max-during-ms")
	}
}

// sendWhile ingests one alert at a time (500 distinct, then resends) into one open incident
// while fn runs, and returns
// the latencies.
func sendWhile(b *testing.B, ctx context.Context, s storetest.Store, fn func()) []time.Duration {
	stop, out := make(chan struct{}), make(chan []time.Duration)
	go func() {
		var lat []time.Duration
		for i := 0; ; i++ {
			select {
			case <-stop:
				out <- lat
				return
			default:
			}
			start := time.Now()
			if _, err := s.Ingest(ctx, []incident.Delivery{storetest.Delivery("live", fmt.Sprint(i%500), "firing", time.Unix(1_700_000_000, 0))}); err != nil {
				b.Error(err)
			}
			lat = append(lat, time.Since(start))
		}
	}()
	fn()
	close(stop)
	return <-out
}

func p99ms(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)*99/100].Microseconds()) / 1000
}
