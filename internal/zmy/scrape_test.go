package zmy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"
)

// nodeExposition is a node's /metrics in the contract's names, with shard 3 also in the seed's
// name style (the contract's name must win) and shard 9 only in the seed's.
const nodeExposition = `# HELP zmy_shard_last_applied_index Last applied Raft index per shard.
# TYPE zmy_shard_last_applied_index gauge
zmy_shard_last_applied_index{shard="1"} 1042
zmy_shard_last_applied_index{shard="2"} 1040
zmy_shard_last_applied_index{shard="3"} 998
# TYPE shard_3_last_applied_index gauge
shard_3_last_applied_index 5
shard_9_last_applied_index 77
zmy_quorum_up 0
zmy_raft_is_leader 1
zmy_raft_leader_info{leader_id="n4"} 1
zmy_raft_leader_info{leader_id="n1"} 0
zmy_raft_term 12
zmy_raft_suspended 1
zmy_peer_heartbeat_rtt_seconds{peer="n2"} 0.0004
zmy_peer_heartbeat_rtt_seconds{peer="n3"} NaN
zmy_peer_up{peer="n2"} 1
zmy_peer_up{peer="n3"} 0
zmy_sync_lag_seconds 0.25
zmy_partition_score 0.5
zmy_node_clock_seconds 1.7000000005e+09
# TYPE zmy_writes_total counter
zmy_writes_total{result="accepted"} 100
go_goroutines 12
`

func serve(t *testing.T, contentType, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

func TestScrapeReadsContractAndSeedNames(t *testing.T) {
	for _, ct := range []string{string(expfmt.FmtText), "text/plain", ""} {
		t.Run(ct, func(t *testing.T) {
			before := time.Now()
			m, err := Scrape(t.Context(), nil, serve(t, ct, nodeExposition), 0)
			require.NoError(t, err)
			require.Equal(t, map[string]uint64{"1": 1042, "2": 1040, "3": 998, "9": 77}, m.Shards)
			require.NotNil(t, m.Quorum)
			require.False(t, *m.Quorum)
			require.True(t, m.IsLeader)
			require.Equal(t, "n4", m.LeaderID)
			require.Equal(t, uint64(12), m.Term)
			require.True(t, m.Suspended)
			require.Equal(t, map[string]float64{"n2": 0.0004}, m.PeerRTT, "NaN means unreachable: absent")
			require.Equal(t, map[string]bool{"n2": true, "n3": false}, m.PeerUp)
			require.Equal(t, 0.25, m.SyncLag)
			require.NotNil(t, m.PartitionScore)
			require.Equal(t, 0.5, *m.PartitionScore)
			require.Equal(t, 1.7000000005e9, m.Clock)
			require.False(t, m.Start.Before(before))
			require.False(t, m.End.Before(m.Start))
			require.Contains(t, m.Raw, `zmy_shard_last_applied_index{shard="1"} 1042`)
			require.Contains(t, m.Raw, "shard_9_last_applied_index 77")
			require.NotContains(t, m.Raw, "go_goroutines")
		})
	}
}

func TestScrapeSeedNamesOnly(t *testing.T) {
	// The seed's `curl … | grep shard_1_last_applied` world: no zmy_ metrics at all.
	m, err := Scrape(t.Context(), nil, serve(t, "text/plain; version=0.0.4", "shard_1_last_applied_index 10\nshard_2_last_applied_index 11\n"), 0)
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"1": 10, "2": 11}, m.Shards)
	require.Nil(t, m.Quorum, "absent is not false")
	require.Nil(t, m.PartitionScore)
	_, _, ok := m.ClockOffset()
	require.False(t, ok)
}

func TestScrapeOpenMetricsAndProtobuf(t *testing.T) {
	// A real client_golang endpoint, negotiated into OpenMetrics and protobuf.
	reg := prometheus.NewRegistry()
	shards := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricShardLastApplied}, []string{"shard"})
	shards.WithLabelValues("1").Set(5)
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricWritesTotal}, []string{"result"})
	writes.WithLabelValues("accepted").Add(3)
	reg.MustRegister(shards, writes)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
	for name, accept := range map[string]string{
		"openmetrics": "application/openmetrics-text;version=1.0.0",
		"protobuf":    string(expfmt.FmtProtoDelim),
		"negotiated":  scrapeAccept,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Header.Set("Accept", accept) // what this node "prefers", whatever we asked
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			m, err := Scrape(t.Context(), srv.Client(), srv.URL, 0)
			require.NoError(t, err)
			require.Equal(t, map[string]uint64{"1": 5}, m.Shards)
		})
	}
}

func TestScrapeExcerptIsReadableTextWithTheVerdictFactsFirst(t *testing.T) {
	// A node of a 300-node cluster, served in protobuf (what Scrape asks for first): its peer
	// families alone exceed the excerpt cap, yet the excerpt is text and opens with the shards,
	// then quorum, leader and term.
	reg := prometheus.NewRegistry()
	shards := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricShardLastApplied}, []string{"shard"})
	rtt := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricPeerRTT}, []string{"peer"})
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricPeerUp}, []string{"peer"})
	quorum := prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricQuorum})
	term := prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricTerm})
	reg.MustRegister(shards, rtt, up, quorum, term)
	for i := range 4 {
		shards.WithLabelValues(fmt.Sprint(i + 1)).Set(float64(1000 + i))
	}
	for i := range 300 {
		rtt.WithLabelValues(fmt.Sprintf("n%d", i)).Set(0.001)
		up.WithLabelValues(fmt.Sprintf("n%d", i)).Set(1)
	}
	quorum.Set(1)
	term.Set(7)
	var served string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
		served = w.Header().Get("Content-Type")
	}))
	defer srv.Close()
	m, err := Scrape(t.Context(), srv.Client(), srv.URL, 0)
	require.NoError(t, err)
	require.Contains(t, served, "application/vnd.google.protobuf", "protobuf negotiated")
	require.Len(t, m.PeerUp, 300)
	require.LessOrEqual(t, len(m.Raw), maxRawExcerpt+len("…\n"))
	require.True(t, strings.HasPrefix(m.Raw, `zmy_shard_last_applied_index{shard="1"} 1000
zmy_shard_last_applied_index{shard="2"} 1001
zmy_shard_last_applied_index{shard="3"} 1002
zmy_shard_last_applied_index{shard="4"} 1003
zmy_quorum_up 1
zmy_raft_term 7
zmy_peer_heartbeat_rtt_seconds{peer="n0"} 0.001
`), "got:\n%s", m.Raw[:300])
	require.True(t, strings.HasSuffix(m.Raw, "…\n"), "capped")
}

func TestScrapeOversizedBodyIsAnError(t *testing.T) {
	big := nodeExposition + strings.Repeat("# padding comment to push the body past the cap\n", 2000)
	url := serve(t, "text/plain", big)
	_, err := Scrape(t.Context(), nil, url, int64(len(big)-1))
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "exceeds")

	// Same without Content-Length (chunked): caught while reading.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 100 {
			fmt.Fprint(w, strings.Repeat("# x\n", 1000))
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	_, err = Scrape(t.Context(), nil, srv.URL, 64<<10)
	require.ErrorIs(t, err, ErrMalformed)
	require.Contains(t, err.Error(), "body exceeds 65536 bytes")

	m, err := Scrape(t.Context(), nil, url, int64(len(big)))
	require.NoError(t, err, "exactly at the cap is fine")
	require.Len(t, m.Shards, 4)
}

func TestScrapeSlowBodyStopsAtTheDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Headers and half the body now, the rest never: only the deadline can end the read.
		fmt.Fprint(w, "zmy_quorum_up 1\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Scrape(ctx, nil, srv.URL, 0)
	require.ErrorIs(t, err, ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestScrapeFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, err := Scrape(t.Context(), nil, srv.URL, 0)
	require.ErrorContains(t, err, "HTTP 503")
	require.NotErrorIs(t, err, ErrTimeout)

	for name, body := range map[string]string{
		"garbage":          "this is not an exposition {{{\n",
		"negative index":   `zmy_shard_last_applied_index{shard="1"} -4` + "\n",
		"fractional index": "shard_1_last_applied_index 4.5\n",
		"no shard label":   "zmy_shard_last_applied_index 4\n",
		"two leaders":      "zmy_raft_leader_info{leader_id=\"n1\"} 1\nzmy_raft_leader_info{leader_id=\"n2\"} 1\n",
	} {
		_, err := Scrape(t.Context(), nil, serve(t, "text/plain", body), 0)
		require.ErrorIs(t, err, ErrMalformed, name)
	}

	l := httptest.NewServer(http.NotFoundHandler())
	url := l.URL
	l.Close()
	_, err = Scrape(t.Context(), nil, url, 0)
	require.ErrorContains(t, err, "scrape "+url)
}

func TestClockOffset(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	m := &NodeMetrics{Start: start, End: start.Add(200 * time.Millisecond), Clock: 1_700_000_000.9}
	off, unc, ok := m.ClockOffset()
	require.True(t, ok)
	require.InDelta(t, (800 * time.Millisecond).Seconds(), off.Seconds(), 1e-6, "node clock minus the request midpoint")
	require.Equal(t, 100*time.Millisecond, unc)
}
