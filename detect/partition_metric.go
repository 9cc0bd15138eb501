package detect

import (
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// partitionScores exports partition_score{cluster} only while it is current, and
// partition_score_timestamp_seconds{cluster}, when it was measured. Nothing measures the score
// between incidents unless watch mode is on, and a score read during a partition must not keep
// saying "partitioned" long after the heal (nor a gauge pre-set to 0 say "connected" before
// anything was measured).
type partitionScores struct {
	now func() time.Time

	mu     sync.Mutex
	last   map[string]scoreReading
	maxAge map[string]time.Duration
}

type scoreReading struct {
	score float64
	at    time.Time
}

// minScoreAge is how long a score stays current without watch mode: a few recovery-gate polls.
const minScoreAge = time.Minute

var (
	descPartitionScore = prometheus.NewDesc(namespace+"_partition_score",
		"Highest netcheck partition_score over the cluster's nodes (0 connected … 1 a clean split), "+
			"while current: absent before the first measurement and once older than max(3 × watch interval, 1m).",
		[]string{"cluster"}, nil)
	descPartitionScoreAt = prometheus.NewDesc(namespace+"_partition_score_timestamp_seconds",
		"When partition_score was last measured, unix seconds.", []string{"cluster"}, nil)
)

func newPartitionScores(now func() time.Time) *partitionScores {
	if now == nil {
		now = time.Now
	}
	return &partitionScores{now: now, last: map[string]scoreReading{}, maxAge: map[string]time.Duration{}}
}

// set records a measurement of the cluster's score taken at at, if any node's netcheck answered
// in results: a round in which none did measured nothing.
func (s *partitionScores) set(cluster string, score float64, at time.Time, results []Result) {
	if !slices.ContainsFunc(results, func(r Result) bool {
		nc, ok := r.Data.(*zmy.Netcheck)
		return r.Probe == ProbeNetcheck && r.Answered() && ok && nc != nil
	}) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last[cluster] = scoreReading{score: score, at: at}
}

// setClusters sets each configured cluster's freshness from its watch interval and forgets
// the clusters no longer configured.
func (s *partitionScores) setClusters(cfg *config.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ages := map[string]time.Duration{}
	for _, c := range cfg.Clusters {
		ages[c.Name] = max(3*watchInterval(cfg, c), minScoreAge)
	}
	for c := range s.last {
		if _, ok := ages[c]; !ok {
			delete(s.last, c)
		}
	}
	s.maxAge = ages
}

func (s *partitionScores) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPartitionScore
	ch <- descPartitionScoreAt
}

func (s *partitionScores) Collect(ch chan<- prometheus.Metric) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, r := range s.last {
		ch <- prometheus.MustNewConstMetric(descPartitionScoreAt, prometheus.GaugeValue, float64(r.at.UnixNano())/1e9, c)
		age, ok := s.maxAge[c]
		if !ok {
			age = minScoreAge
		}
		if now.Sub(r.at) <= age {
			ch <- prometheus.MustNewConstMetric(descPartitionScore, prometheus.GaugeValue, r.score, c)
		}
	}
}
