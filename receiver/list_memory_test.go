package receiver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// bigJournal writes n incidents into a journal at dir through the incident package: closed
// unknown-cluster incidents whose alert carries labelBytes of labels, every bigEvery-th one
// also with a confirmed verdict of evidenceBytes of evidence, a timeline and commands, as a
// real remediation leaves.
func bigJournal(t *testing.T, dir string, n, labelBytes, bigEvery, evidenceBytes int) {
	t.Helper()
	ctx := t.Context()
	j, err := incident.Open(dir, incident.Options{})
	require.NoError(t, err)
	defer j.Close()
	filler := strings.Repeat("x", labelBytes)
	const batch = 2000
	for start := 0; start < n; start += batch {
		ds := make([]incident.Delivery, 0, batch)
		for i := start; i < min(n, start+batch); i++ {
			cluster := fmt.Sprintf("c%06d", i)
			ds = append(ds, incident.Delivery{Cluster: cluster, Alertname: "ZMY_Quorum_Down", Alert: incident.AlertRecord{
				GroupKey: `{}:{alertname="ZMY_Quorum_Down"}`, Receiver: "zmy", Fingerprint: fmt.Sprintf("%016x", i), Status: "firing",
				Labels:   map[string]string{"alertname": "ZMY_Quorum_Down", "cluster": cluster, "description": filler},
				StartsAt: time.Unix(1_700_000_000+int64(i), 0).UTC(), ExternalURL: "http://am-0:9093",
			}})
		}
		_, err := j.Ingest(ctx, ds)
		require.NoError(t, err)
	}
	ev := make([]incident.Evidence, 0, 64)
	for k := range 64 {
		ev = append(ev, incident.Evidence{Node: fmt.Sprintf("n%d", k%5+1), Probe: "data", OK: true,
			Value: "shards 1=49 2=48", Raw: strings.Repeat("zmy_shard_last_applied_index 1\n", evidenceBytes/64/31+1)})
	}
	for i := bigEvery; i <= n; i += bigEvery {
		_, err := j.Update(ctx, incident.FormatID(uint64(i)), func(inc *incident.Incident) error {
			inc.Verdict = &incident.Verdict{Kind: incident.VerdictConfirmed, Reason: "split", Evidence: ev,
				Conditions: map[incident.Condition]bool{incident.CondControl: true, incident.CondData: true, incident.CondNetwork: true}}
			for k := range 40 {
				inc.Commands = append(inc.Commands, incident.Command{Node: fmt.Sprintf("n%d", k%5+1),
					Args: []string{"zmyctl", "raft", "suspend", "--force"}, Output: `{"raft_state":"suspended"}`})
				inc.Timeline = append(inc.Timeline, incident.Event{Step: incident.StepContaining, Message: "entered containing: silence in place"})
			}
			return nil
		})
		require.NoError(t, err)
	}
}

// memory reads /proc/PID/status: the peak RSS (VmHWM), and the resident anonymous memory now
// (RssAnon: the Go heap and stacks, what GOMEMLIMIT governs; file pages of the mmapped journal
// are RssFile, page cache the kernel reclaims at will), in bytes.
func memory(t *testing.T, pid int) (peak, anon int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), ":")
		if name != "VmHWM" && name != "RssAnon" {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		require.NoError(t, err)
		if name == "VmHWM" {
			peak = kb << 10
		} else {
			anon = kb << 10
		}
	}
	return peak, anon
}

// TestListMemoryBounded: 8 clients reading every page of a 100,000-incident journal at once
// keep the daemon's memory under its 384 MiB soft limit (listing every incident in full, as the
// API did before it had pages, took 1.7 GB of RSS with a 127 MB journal), and every incident is
// listed exactly once.
func TestListMemoryBounded(t *testing.T) {
	const incidents, readers = 100_000, 8
	storage := t.TempDir()
	start := time.Now()
	bigJournal(t, storage, incidents, 1000, 100, 64<<10)
	fi, err := os.Stat(filepath.Join(storage, incident.FileName))
	require.NoError(t, err)
	t.Logf("journal: %d incidents, %.0f MiB, written in %s", incidents, float64(fi.Size())/(1<<20), time.Since(start).Round(time.Millisecond))

	d := startDaemon(t, nil, "--config.file="+configFile(t, testClusters), "--storage.path="+storage)
	pid := d.cmd.Process.Pid
	_, anonBefore := memory(t, pid)
	// RssAnon has no peak of its own in /proc: sample it while the readers run.
	var peakAnon atomic.Int64
	sampled := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if _, anon := memory(t, pid); anon > peakAnon.Load() {
				peakAnon.Store(anon)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	counts := make([]int, readers)
	client := &http.Client{Timeout: time.Minute}
	for r := range readers {
		wg.Go(func() {
			cursor := ""
			for {
				resp, err := client.Get(d.url + "/api/v1/incidents?limit=100&cursor=" + cursor)
				if err != nil {
					errs <- err
					return
				}
				var page struct {
					Incidents  []incident.Summary `json:"incidents"`
					NextCursor string             `json:"next_cursor"`
				}
				err = json.NewDecoder(resp.Body).Decode(&page)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					errs <- fmt.Errorf("page after %q: %d %v", cursor, resp.StatusCode, err)
					return
				}
				counts[r] += len(page.Incidents)
				if cursor = page.NextCursor; cursor == "" {
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	peak, _ := memory(t, pid)
	t.Logf("%d readers × %d incidents in %s; daemon anonymous RSS %.0f MiB before, peak %.0f MiB; peak RSS with the journal's file pages %.0f MiB",
		readers, incidents, time.Since(start).Round(time.Millisecond), mib(anonBefore), mib(peakAnon.Load()), mib(peak))
	for r := range readers {
		require.Equal(t, incidents, counts[r], "reader %d", r)
	}
	require.Less(t, peakAnon.Load(), int64(384<<20), "the daemon's memory went over its 384 MiB soft limit")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
