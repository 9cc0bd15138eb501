package sim

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRunBenchSmall(t *testing.T) {
	res, err := RunBench(t.Context(), BenchOptions{Nodes: 5, WriteRate: 500, Duration: 300 * time.Millisecond, Scrapes: 5})
	require.NoError(t, err)
	require.Equal(t, 5, res.Nodes)
	require.Positive(t, res.AcceptedWrites)
	require.Positive(t, res.ScrapeBytes)
	require.GreaterOrEqual(t, res.ScrapeP99Millis, res.ScrapeP50Millis)
}

// BenchmarkWrite200 is one client write on a healthy 200-node model: append at the leader,
// replicate to 199 followers.
func BenchmarkWrite200(b *testing.B) {
	m := newModel(200, 4, time.Millisecond, time.Now())
	now := time.Now()
	m.step(now)
	b.ReportAllocs()
	for b.Loop() {
		m.write(now)
	}
}

// BenchmarkScrapeNode200 is one scrape of one node's /metrics in a 200-node cluster.
func BenchmarkScrapeNode200(b *testing.B) {
	c, err := Start(b.Context(), Options{Cluster: "bench", Nodes: 200, WriteRate: 1000})
	require.NoError(b, err)
	defer c.Close()
	url := c.Endpoints().Nodes[0].MetricsURL
	client := &http.Client{Timeout: 10 * time.Second}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
