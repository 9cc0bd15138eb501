package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	"github.com/zmyorg/zmy-responder/internal/stack"
)

// reqIDPlaceholder is replaced in every request so that each delivery carries alerts never seen
// before: the worst case for the journal, which stores new alerts and only counts repeats.
const reqIDPlaceholder = "REQID000"

// payloadTemplate renders a notification of n firing alerts for a cluster the responder's
// configuration does not list (the engine stays idle; the journal path is the same as for a
// known cluster: route, store, fsync).
func payloadTemplate(n int) []byte {
	msg := webhook.Message{
		Data: &template.Data{
			Receiver: "zmy-responder", Status: "firing", ExternalURL: "http://alertmanager:9093",
			GroupLabels:  template.KV{"alertname": "ZMY_Quorum_Down", "cluster": "bench"},
			CommonLabels: template.KV{"alertname": "ZMY_Quorum_Down", "cluster": "bench", "job": "zmy"},
		},
		Version:  "4",
		GroupKey: `{}:{alertname="ZMY_Quorum_Down", cluster="bench"}`,
	}
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		msg.Alerts = append(msg.Alerts, template.Alert{
			Status: "firing",
			Labels: template.KV{"alertname": "ZMY_Quorum_Down", "cluster": "bench", "job": "zmy",
				"instance": fmt.Sprintf("zmy-%05d.example.com:8080", i), "shard": fmt.Sprint(i % 64)},
			Annotations:  template.KV{"summary": "ZMY quorum lost", "runbook_url": "https://runbooks.example.com/SOP-ZMY-001"},
			StartsAt:     start,
			GeneratorURL: "http://prometheus:9090/graph?g0.expr=zmy_quorum_up+%3D%3D+0",
			Fingerprint:  fmt.Sprintf("%s%08x", reqIDPlaceholder, i),
		})
	}
	b, err := json.Marshal(msg)
	if err != nil {
		panic(err)
	}
	return b
}

// result is one measured run.
type result struct {
	Deliveries int
	Errors     int
	Elapsed    time.Duration
	P50, P99   time.Duration
}

func (r result) rate() float64 { return float64(r.Deliveries) / r.Elapsed.Seconds() }

// drive posts to url from `senders` goroutines, each waiting for its answer before the next
// request (as Alertmanager's notifiers do), for d after a warm-up, or until maxRequests.
func drive(ctx context.Context, url string, tmpl []byte, senders int, d, warmup time.Duration, maxRequests int) (result, error) {
	client := &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConns: senders, MaxIdleConnsPerHost: senders, DisableCompression: true},
	}
	defer client.CloseIdleConnections()
	var (
		seq     atomic.Int64
		mu      sync.Mutex
		lats    []time.Duration
		errs    int
		firstEr error
	)
	measureFrom := time.Now().Add(warmup)
	stopAt := measureFrom.Add(d)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(stopAt) {
				n := seq.Add(1)
				if maxRequests > 0 && n > int64(maxRequests) {
					return
				}
				body := bytes.ReplaceAll(tmpl, []byte(reqIDPlaceholder), fmt.Appendf(nil, "%08x", n))
				start := time.Now()
				err := stack.PostNotification(ctx, client, url, body)
				lat := time.Since(start)
				mu.Lock()
				switch {
				case err != nil:
					errs++
					if firstEr == nil {
						firstEr = err
					}
				case start.After(measureFrom) || maxRequests > 0:
					lats = append(lats, lat)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)
	if maxRequests > 0 {
		// Fixed-count runs (the 10,000-alert payloads) are measured from their first request.
		elapsed = time.Since(measureFrom.Add(-warmup))
	}
	if len(lats) == 0 {
		return result{}, fmt.Errorf("no successful request (%d errors): %v", errs, firstEr)
	}
	if errs > 0 {
		return result{}, fmt.Errorf("%d of %d requests failed: %w", errs, errs+len(lats), firstEr)
	}
	slices.Sort(lats)
	return result{
		Deliveries: len(lats), Errors: errs, Elapsed: elapsed,
		P50: quantile(lats, 0.50), P99: quantile(lats, 0.99),
	}, nil
}

// quantile of sorted durations, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// medianOf sorts v and returns its middle element.
func medianOf(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}
