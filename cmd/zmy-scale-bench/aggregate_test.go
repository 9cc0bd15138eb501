package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two scrapes of the responder, as the measured window's start and end.
const (
	scrapeBefore = `# TYPE zmy_responder_probe_results_total counter
zmy_responder_probe_results_total{probe="control",result="ok"} 100
zmy_responder_probe_results_total{probe="control",result="error"} 2
zmy_responder_probe_results_total{probe="tcp",result="fail"} 0
zmy_responder_probe_results_total{probe="netcheck",result="budget_exhausted"} 1
# TYPE zmy_responder_commands_total counter
zmy_responder_commands_total{command="status",result="ok"} 50
zmy_responder_commands_total{command="netcheck",result="ok"} 50
# TYPE zmy_responder_journal_write_duration_seconds histogram
zmy_responder_journal_write_duration_seconds_bucket{le="0.01"} 3
zmy_responder_journal_write_duration_seconds_bucket{le="+Inf"} 4
zmy_responder_journal_write_duration_seconds_sum 0.02
zmy_responder_journal_write_duration_seconds_count 4
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 0.0001
go_gc_duration_seconds_sum 0.001
go_gc_duration_seconds_count 5
# TYPE zmy_responder_probe_slots_in_use gauge
zmy_responder_probe_slots_in_use 7
`
	scrapeAfter = `# TYPE zmy_responder_probe_results_total counter
zmy_responder_probe_results_total{probe="control",result="ok"} 190
zmy_responder_probe_results_total{probe="control",result="error"} 2
zmy_responder_probe_results_total{probe="tcp",result="fail"} 3
zmy_responder_probe_results_total{probe="netcheck",result="budget_exhausted"} 5
zmy_responder_probe_results_total{probe="data",result="skipped"} 1
zmy_responder_probe_results_total{probe="data",result="error"} 1
# TYPE zmy_responder_commands_total counter
zmy_responder_commands_total{command="status",result="ok"} 80
zmy_responder_commands_total{command="netcheck",result="ok"} 75
# TYPE zmy_responder_journal_write_duration_seconds histogram
zmy_responder_journal_write_duration_seconds_bucket{le="0.01"} 9
zmy_responder_journal_write_duration_seconds_bucket{le="+Inf"} 14
zmy_responder_journal_write_duration_seconds_sum 0.07
zmy_responder_journal_write_duration_seconds_count 14
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 0.0002
go_gc_duration_seconds_sum 0.004
go_gc_duration_seconds_count 8
# TYPE zmy_responder_probe_slots_in_use gauge
zmy_responder_probe_slots_in_use 2
`
)

// The window's figures are the growth between two scrapes: a series first seen in the second
// counts from zero, summaries and histograms give their count and sum, gauges are not counters,
// and probe results sort into answers, false failures and probes not run.
func TestWindowFromTwoScrapes(t *testing.T) {
	before, err := parseCounters(strings.NewReader(scrapeBefore))
	require.NoError(t, err)
	after, err := parseCounters(strings.NewReader(scrapeAfter))
	require.NoError(t, err)

	require.Equal(t, 55.0, after.total(before, "zmy_responder_commands_total"))
	require.Equal(t, 10.0, after.total(before, "zmy_responder_journal_write_duration_seconds_count"))
	require.InDelta(t, 0.05, after.total(before, "zmy_responder_journal_write_duration_seconds_sum"), 1e-9)
	require.Equal(t, 3.0, after.total(before, "go_gc_duration_seconds_count"))
	require.NotContains(t, after, "zmy_responder_probe_slots_in_use", "a gauge is no counter")
	require.Zero(t, after.total(before, "no_such_metric"))

	var r result
	r.countProbes(after.diff(before, "zmy_responder_probe_results_total"))
	require.Equal(t, 90+3+4+1+1, r.Probes)
	require.Equal(t, 4, r.ProbeFailures, "tcp fail 3 and data error 1; control's earlier errors are outside the window")
	require.Equal(t, map[string]int{"tcp/fail": 3, "data/error": 1}, r.FailuresByProbe)
	require.Equal(t, map[string]int{"budget_exhausted": 4, "skipped": 1}, r.ProbeNotRun)
	require.InDelta(t, 4.0/99, r.FailureRate, 1e-9)

	_, err = parseCounters(strings.NewReader("zmy_responder_probe_results_total{probe=\"control\" 1\n"))
	require.Error(t, err, "a malformed scrape is an error, not an empty window")
}

// Latency quantiles are nearest-rank: p99 of 60 notifications is the 59th fastest, so it is
// not the maximum unless the two slowest tie.
func TestQuantileNearestRank(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 60; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 30*time.Millisecond, quantile(lat, 0.5))
	require.Equal(t, 59*time.Millisecond, quantile(lat, 0.99))
	require.Equal(t, 60*time.Millisecond, quantile(lat, 1))
	require.Equal(t, 7*time.Millisecond, quantile([]time.Duration{7 * time.Millisecond}, 0.99))
}
