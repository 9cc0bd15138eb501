package zmy

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// DefaultScrapeMaxBytes is Scrape's size cap when the caller passes none.
const DefaultScrapeMaxBytes = 4 << 20

// maxRawExcerpt bounds NodeMetrics.Raw, which ends up in incident records.
const maxRawExcerpt = 4 << 10

// scrapeAccept prefers the protobuf exposition, as Prometheus does when it may: client_golang
// nodes encode it, and expfmt decodes it, at about half the CPU of the text format (a round
// scrapes every node of a cluster). Then the classic text format, which every exporter speaks,
// then OpenMetrics.
const scrapeAccept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=1.0," +
	"text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,*/*;q=0.1"

// seedShardMetric matches the seed's per-shard names, shard_<N>_last_applied_index.
var seedShardMetric = regexp.MustCompile(`^shard_([0-9]+)_last_applied_index$`)

// NodeMetrics is what one scrape of a node's /metrics says.
type NodeMetrics struct {
	Shards         map[string]uint64  `json:"shards"` // shard id -> last applied index (both name styles)
	Quorum         *bool              `json:"quorum,omitempty"`
	LeaderID       string             `json:"leader_id,omitempty"`
	Term           uint64             `json:"term"`
	Suspended      bool               `json:"suspended"`
	IsLeader       bool               `json:"is_leader"`
	PeerRTT        map[string]float64 `json:"peer_rtt,omitempty"` // seconds; unreachable peers absent
	PeerUp         map[string]bool    `json:"peer_up,omitempty"`
	SyncLag        float64            `json:"sync_lag"`                  // seconds
	PartitionScore *float64           `json:"partition_score,omitempty"` // nil if absent
	Clock          float64            `json:"clock"`                     // node wall clock, unix seconds; 0 if absent
	Start          time.Time          `json:"start"`                     // responder clock before the request
	End            time.Time          `json:"end"`                       // and after the body was read
	Raw            string             `json:"raw"`                       // capped excerpt of the lines used, for evidence
}

// ClockOffset is the node clock minus the midpoint of the request, and the half-width of the
// request, which bounds the error of that estimate. ok is false without a clock metric.
func (m *NodeMetrics) ClockOffset() (offset, uncertainty time.Duration, ok bool) {
	if m.Clock == 0 {
		return 0, 0, false
	}
	half := m.End.Sub(m.Start) / 2
	mid := m.Start.Add(half)
	nodeNanos := m.Clock * 1e9
	offset = time.Duration(nodeNanos - float64(mid.UnixNano()))
	return offset, half, true
}

// Scrape reads one node's /metrics within ctx's deadline. A body larger than maxBytes
// (DefaultScrapeMaxBytes if ≤ 0) is an error, never silently truncated: a cut exposition could
// drop exactly the shard that diverged.
func Scrape(ctx context.Context, client *http.Client, url string, maxBytes int64) (*NodeMetrics, error) {
	if client == nil {
		client = &http.Client{}
	}
	if maxBytes <= 0 {
		maxBytes = DefaultScrapeMaxBytes
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	req.Header.Set("Accept", scrapeAccept)
	m := &NodeMetrics{Start: time.Now()}
	resp, err := client.Do(req)
	if err != nil {
		return nil, scrapeErr(ctx, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %s", url, resp.Status)
	}
	if resp.ContentLength > maxBytes {
		return nil, fmt.Errorf("scrape %s: %w: Content-Length %d exceeds %d bytes", url, ErrMalformed, resp.ContentLength, maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	m.End = time.Now()
	if err != nil {
		return nil, scrapeErr(ctx, url, err)
	}
	if int64(len(body)) > maxBytes {
		return nil, fmt.Errorf("scrape %s: %w: body exceeds %d bytes", url, ErrMalformed, maxBytes)
	}
	fams, err := decodeExposition(body, expfmt.ResponseFormat(resp.Header))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w: %w", url, ErrMalformed, err)
	}
	if err := m.fill(fams); err != nil {
		return nil, fmt.Errorf("scrape %s: %w: %w", url, ErrMalformed, err)
	}
	m.Raw = rawExcerpt(fams)
	return m, nil
}

// scrapeErr turns a transport error into ErrTimeout when ctx's deadline caused it.
func scrapeErr(ctx context.Context, url string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("scrape %s: %w: %w", url, ErrTimeout, err)
	}
	return fmt.Errorf("scrape %s: %w", url, err)
}

// decodeExposition parses text, OpenMetrics or delimited protobuf by Content-Type; an unknown or
// missing Content-Type is tried as text, which is what a hand-written endpoint usually serves.
func decodeExposition(body []byte, format expfmt.Format) (map[string]*dto.MetricFamily, error) {
	if format == expfmt.FmtUnknown {
		p := expfmt.NewTextParser(model.UTF8Validation)
		return p.TextToMetricFamilies(bytes.NewReader(body))
	}
	fams := map[string]*dto.MetricFamily{}
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return fams, nil
		}
		if err != nil {
			return nil, err
		}
		fams[mf.GetName()] = mf
	}
}

// fill reads the contract's metrics out of the parsed families.
func (m *NodeMetrics) fill(fams map[string]*dto.MetricFamily) error {
	m.Shards = map[string]uint64{}
	m.PeerRTT = map[string]float64{}
	m.PeerUp = map[string]bool{}
	fromContract := map[string]bool{} // shards given by the contract's name win over seed names
	for name, mf := range fams {
		for _, metric := range mf.GetMetric() {
			v, ok := sampleValue(metric)
			if !ok {
				continue
			}
			switch name {
			case MetricShardLastApplied:
				shard := label(metric, "shard")
				if shard == "" {
					return fmt.Errorf("%s without a shard label", name)
				}
				idx, err := appliedIndex(name, shard, v)
				if err != nil {
					return err
				}
				m.Shards[shard], fromContract[shard] = idx, true
			case MetricQuorum:
				up := v == 1
				m.Quorum = &up
			case MetricIsLeader:
				m.IsLeader = v == 1
			case MetricLeaderInfo:
				if v != 1 {
					continue
				}
				id := label(metric, "leader_id")
				if m.LeaderID != "" && id != m.LeaderID {
					return fmt.Errorf("%s names two leaders, %q and %q", name, excerpt(m.LeaderID), excerpt(id))
				}
				m.LeaderID = id
			case MetricTerm:
				if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
					return fmt.Errorf("%s: bad value %v", name, v)
				}
				m.Term = uint64(v)
			case MetricSuspended:
				m.Suspended = v == 1
			case MetricPeerRTT:
				// NaN is the contract's "unreachable"; absent says the same.
				if peer := label(metric, "peer"); peer != "" && !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 {
					m.PeerRTT[peer] = v
				}
			case MetricPeerUp:
				if peer := label(metric, "peer"); peer != "" {
					m.PeerUp[peer] = v == 1
				}
			case MetricSyncLag:
				if !math.IsNaN(v) {
					m.SyncLag = v
				}
			case MetricPartitionScore:
				if !math.IsNaN(v) {
					s := v
					m.PartitionScore = &s
				}
			case MetricClock:
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					m.Clock = v
				}
			default:
				sm := seedShardMetric.FindStringSubmatch(name)
				if sm == nil || fromContract[sm[1]] {
					continue
				}
				idx, err := appliedIndex(name, sm[1], v)
				if err != nil {
					return err
				}
				m.Shards[sm[1]] = idx
			}
		}
	}
	return nil
}

// appliedIndex checks that a shard's applied index is a non-negative whole number.
func appliedIndex(name, shard string, v float64) (uint64, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v != math.Trunc(v) || v >= 1<<64 {
		return 0, fmt.Errorf("%s{shard=%q}: %v is not an applied index", name, excerpt(shard), v)
	}
	return uint64(v), nil
}

// sampleValue is the value of a gauge, untyped or counter sample.
func sampleValue(m *dto.Metric) (float64, bool) {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	}
	return 0, false
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// rawExcerpt renders, in the text format whatever format was scraped, the samples the
// responder reads, so the evidence shows what it saw without storing a whole exposition per
// node per probe. The verdict's own facts come first (shards, quorum, leader, term, suspension,
// clock), then the rest of the contract's families, then the per-peer ones, which on a large
// cluster alone would fill the excerpt.
func rawExcerpt(fams map[string]*dto.MetricFamily) string {
	names := make([]string, 0, len(fams))
	rank := map[string]int{}
	for name := range fams {
		switch {
		case !strings.HasPrefix(name, "zmy_") && !strings.HasPrefix(name, "shard_"):
			continue
		case name == MetricShardLastApplied || seedShardMetric.MatchString(name):
			rank[name] = 0
		case slices.Contains(verdictMetrics, name):
			rank[name] = 1
		case name == MetricPeerRTT || name == MetricPeerUp:
			rank[name] = 3
		default:
			rank[name] = 2
		}
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank[a], rank[b]), strings.Compare(a, b))
	})
	var b strings.Builder
	for _, name := range names {
		for _, metric := range fams[name].GetMetric() {
			v, ok := sampleValue(metric)
			if !ok {
				continue
			}
			line := sampleLine(name, metric, v)
			if b.Len()+len(line)+1 > maxRawExcerpt {
				b.WriteString("…\n")
				return b.String()
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// verdictMetrics are the single-sample families the verdict reads, shown right after the shards.
var verdictMetrics = []string{MetricQuorum, MetricLeaderInfo, MetricIsLeader, MetricTerm, MetricSuspended,
	MetricClock, MetricSyncLag, MetricPartitionScore}

// sampleLine is one sample as the text format writes it: name{label="value",…} value.
func sampleLine(name string, m *dto.Metric, v float64) string {
	var b strings.Builder
	b.WriteString(name)
	if lps := m.GetLabel(); len(lps) > 0 {
		b.WriteByte('{')
		for i, lp := range lps {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(lp.GetName())
			b.WriteByte('=')
			b.WriteString(strconv.Quote(lp.GetValue()))
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	return b.String()
}
