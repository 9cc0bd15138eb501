package receiver

import (
	"sync"
	"time"
)

// A dry-run plan probes every node of the cluster (about ten zmyctl runs per node and a scrape):
// each cluster gets planBurst plans at once, then one more every planEvery.
const (
	planBurst = 3
	planEvery = 10 * time.Second
)

// planLimiter is a token bucket per configured cluster. Only clusters in the configuration reach
// it, so its map is bounded by the configuration.
type planLimiter struct {
	mu      sync.Mutex
	burst   float64
	every   time.Duration
	buckets map[string]*planBucket
}

type planBucket struct {
	tokens float64
	at     time.Time
}

func newPlanLimiter(burst int, every time.Duration) *planLimiter {
	return &planLimiter{burst: float64(burst), every: every, buckets: map[string]*planBucket{}}
}

// take spends one token of the cluster's bucket at now: 0 when granted, else how long until
// the next token.
func (l *planLimiter) take(cluster string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[cluster]
	if b == nil {
		b = &planBucket{tokens: l.burst, at: now}
		l.buckets[cluster] = b
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+float64(elapsed)/float64(l.every))
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.every))
}
