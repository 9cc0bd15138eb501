package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/zmyorg/zmy-responder/internal/stack"
)

// notification is one firing ZMY_Quorum_Down alert, new each time (its fingerprint is i), for a
// cluster the configuration does not list: journaled and answered like any other, while the
// runbook engine stays idle, so the only probe load is the watch's.
func notification(i int) []byte {
	labels := template.KV{"alertname": "ZMY_Quorum_Down", "cluster": "scale-unlisted", "job": "zmy"}
	msg := webhook.Message{
		Data: &template.Data{
			Receiver: "zmy-responder", Status: "firing", ExternalURL: "http://alertmanager:9093",
			GroupLabels: template.KV{"alertname": "ZMY_Quorum_Down", "cluster": "scale-unlisted"}, CommonLabels: labels,
			Alerts: template.Alerts{{
				Status: "firing", Labels: labels, StartsAt: time.Now(),
				Annotations:  template.KV{"summary": "ZMY quorum lost"},
				GeneratorURL: "http://prometheus:9090/graph?g0.expr=zmy_quorum_up+%3D%3D+0",
				Fingerprint:  fmt.Sprintf("%016x", i),
			}},
		},
		Version:  "4",
		GroupKey: `{}:{alertname="ZMY_Quorum_Down", cluster="scale-unlisted"}`,
	}
	b, err := json.Marshal(msg)
	if err != nil {
		panic(err)
	}
	return b
}

// sendWebhooks posts rate notifications a second for d, open loop: each leaves on its tick
// whether or not the previous one was answered, so a slow answer cannot hide the ones behind
// it. every runs once a tick (the caller samples memory there). It returns the latencies of
// the 200 answers, the number of other outcomes and the first of those.
func sendWebhooks(ctx context.Context, url string, rate float64, d time.Duration, every func()) ([]time.Duration, int, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	var (
		mu       sync.Mutex
		lats     []time.Duration
		errs     int
		firstErr error
		wg       sync.WaitGroup
	)
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	stopAt := time.Now().Add(d)
	for i := 0; time.Now().Before(stopAt) && ctx.Err() == nil; i++ {
		body := notification(i)
		wg.Go(func() {
			start := time.Now()
			err := stack.PostNotification(ctx, client, url, body)
			lat := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			lats = append(lats, lat)
		})
		every()
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	wg.Wait()
	return lats, errs, firstErr
}

// counters are the counter series of one scrape (and the _count and _sum of its summaries and
// histograms), by metric name and then label set.
type counters map[string]map[labelSet]float64

// labelSet is a series' labels as sorted name=value pairs joined by commas.
type labelSet string

func (l labelSet) get(name string) string {
	for _, kv := range strings.Split(string(l), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

func scrapeCounters(ctx context.Context, url string) (counters, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	out, err := parseCounters(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return out, nil
}

// parseCounters reads the counters, and the count and sum of summaries and histograms, of a
// text exposition.
func parseCounters(r io.Reader) (counters, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := counters{}
	add := func(name string, ls labelSet, v float64) {
		if out[name] == nil {
			out[name] = map[labelSet]float64{}
		}
		out[name][ls] = v
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			pairs := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				pairs = append(pairs, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(pairs)
			ls := labelSet(strings.Join(pairs, ","))
			// Counters, and the count and sum of summaries and histograms, which only grow too.
			switch f.GetType().String() {
			case "COUNTER":
				add(name, ls, m.GetCounter().GetValue())
			case "SUMMARY":
				add(name+"_count", ls, float64(m.GetSummary().GetSampleCount()))
				add(name+"_sum", ls, m.GetSummary().GetSampleSum())
			case "HISTOGRAM":
				add(name+"_count", ls, float64(m.GetHistogram().GetSampleCount()))
				add(name+"_sum", ls, m.GetHistogram().GetSampleSum())
			}
		}
	}
	return out, nil
}

// total is how much every series of the named counter grew since before, together.
func (c counters) total(before counters, name string) float64 {
	var sum float64
	for _, v := range c.diff(before, name) {
		sum += v
	}
	return sum
}

// diff is how much each series of the named counter grew since before.
func (c counters) diff(before counters, name string) map[labelSet]float64 {
	out := map[labelSet]float64{}
	for k, v := range c[name] {
		out[k] = v - before[name][k]
	}
	return out
}
