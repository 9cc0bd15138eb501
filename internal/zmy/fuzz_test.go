package zmy

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
)

// FuzzParsers feeds arbitrary zmyctl output to every parser: none may panic, every failure is
// ErrMalformed with no value, and every success passes the same validation as JSON input.
// Seeds: testdata/fuzz/FuzzParsers. Run longer with
// go test -run '^$' -fuzz FuzzParsers -fuzztime 30s ./internal/zmy
func FuzzParsers(f *testing.F) {
	f.Add(`{"node":"n1","peers":[{"peer":"n2","addr":"127.0.0.1:7071","reachable":true,"rtt_ms":0.412,"firewall_blocked":false},` +
		`{"peer":"n3","addr":"127.0.0.1:7072","reachable":false,"rtt_ms":0,"firewall_blocked":true}],"partition_score":0.5}`)
	f.Add(` { "peers" : [ ] , "node" : "n1", "partition_score" : 1e0 } `)
	f.Add(`{"node":"n1","peers":[{"peer":"n2","rtt_ms":-0,"RTT_MS":1}],"partition_score":0}`)
	f.Add(`{"node":"n\u0031","peers":null,"partition_score":0.25}`)
	f.Fuzz(func(t *testing.T, out string) {
		check := func(name string, ok bool, err error, valid error) {
			t.Helper()
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s: error %v is not ErrMalformed", name, err)
				}
				if ok {
					t.Fatalf("%s: value returned with error %v", name, err)
				}
				return
			}
			if !ok {
				t.Fatalf("%s: nil value without error", name)
			}
			if valid != nil {
				t.Fatalf("%s: accepted output fails validation: %v", name, valid)
			}
		}
		s, err := ParseStatus(out)
		check("status", s != nil, err, validIf(s, validateStatus))
		r, err := ParseRaftState(out)
		check("raft state", r != nil, err, validIf(r, validateRaftState))
		sn, err := ParseSnapshot(out)
		check("snapshot", sn != nil, err, validIf(sn, validateSnapshot))
		l, err := ParseSnapshotList(out)
		check("snapshot list", l != nil, err, nil)
		rc, err := ParseRecover(out)
		check("recover", rc != nil, err, validIf(rc, validateRecover))
		n, err := ParseNetcheck(out)
		check("netcheck", n != nil, err, validIf(n, validateNetcheck))
		// The reflection-free netcheck decoder agrees with encoding/json wherever it decodes.
		if fast, ok := decodeNetcheckJSON(strings.TrimSpace(out)); ok {
			var want Netcheck
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &want); err != nil {
				t.Fatalf("fast netcheck decoder accepted what encoding/json refuses (%v): %q", err, out)
			}
			got := *fast
			if len(got.Peers) == 0 && len(want.Peers) == 0 {
				got.Peers, want.Peers = nil, nil // [] and an absent key alike: no peers
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fast netcheck decoder: %+v, encoding/json: %+v, for %q", *fast, want, out)
			}
		}
	})
}

func validIf[T any](v *T, validate func(*T) error) error {
	if v == nil {
		return nil
	}
	return validate(v)
}

// FuzzScrapeBody feeds arbitrary expositions to the scraper's decoding: no panic, and a success
// never yields a shard index that is not a whole non-negative number.
func FuzzScrapeBody(f *testing.F) {
	f.Add("zmy_shard_last_applied_index{shard=\"1\"} 10\nshard_2_last_applied_index 7\nzmy_quorum_up 1\n")
	f.Add("# TYPE zmy_raft_leader_info gauge\nzmy_raft_leader_info{leader_id=\"n1\"} 1\nzmy_raft_leader_info{leader_id=\"n2\"} 1\n")
	f.Add("zmy_peer_heartbeat_rtt_seconds{peer=\"n2\"} NaN\nzmy_node_clock_seconds 1.7e9\n")
	f.Fuzz(func(t *testing.T, body string) {
		fams, err := decodeExposition([]byte(body), expfmt.FmtUnknown)
		if err != nil {
			return
		}
		m := &NodeMetrics{}
		if err := m.fill(fams); err != nil {
			return
		}
		for shard, idx := range m.Shards {
			if shard == "" {
				t.Fatalf("empty shard id (index %d)", idx)
			}
		}
	})
}
