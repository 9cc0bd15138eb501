package incident

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The etcd store's keys, all under its prefix (ARCHITECTURE.md draws the layout):
//
//	id                                    the store's identity (ID)
//	seq                                   the last incident sequence given out, decimal
//	open/<cluster>/<alertname>            sequence of the group's open incident
//	latest/<cluster>/<alertname>          sequence of the group's newest incident
//	incidents/<seq>/head                  the record without alerts and long lists, and its parts
//	incidents/<seq>/meta                  one byte: open, unknown cluster, resolved (ingest's view)
//	incidents/<seq>/count                 alerts stored and deliveries dropped by the cap (16 bytes)
//	incidents/<seq>/part/<hash>           a piece of a long list (evidence, commands, timeline)
//	incidents/<seq>/alert/<fp>/<t>/<st>   one alert: delivery count, last seen, the record
//	state/<key>                           the documents of GetState/UpdateState
//	prune/count                           how many incidents Prune ever deleted, decimal
//	prune/floor                           every incident below this sequence was deleted, decimal
//
// <seq> is zero-padded to 20 digits so that keys sort as numbers do; names coming from alerts
// are path-escaped so that a "/" in a label cannot reach into another key.
type etcdKeys struct{ prefix string }

func (k etcdKeys) id() string      { return k.prefix + "id" }
func (k etcdKeys) seq() string     { return k.prefix + "seq" }
func (k etcdKeys) openDir() string { return k.prefix + "open/" }

func (k etcdKeys) open(g group) string {
	return k.openDir() + url.PathEscape(g.cluster) + "/" + url.PathEscape(g.alertname)
}

func (k etcdKeys) latest(g group) string {
	return k.prefix + "latest/" + url.PathEscape(g.cluster) + "/" + url.PathEscape(g.alertname)
}

func (k etcdKeys) incidents() string { return k.prefix + "incidents/" }

// incident is the directory of every key of one incident.
func (k etcdKeys) incident(seq uint64) string {
	return fmt.Sprintf("%s%020d/", k.incidents(), seq)
}

func (k etcdKeys) head(seq uint64) string { return k.incident(seq) + "head" }
func (k etcdKeys) meta(seq uint64) string { return k.incident(seq) + "meta" }

// count is outside [head, recordEnd) and the alerts directory.
func (k etcdKeys) count(seq uint64) string { return k.incident(seq) + "count" }

func (k etcdKeys) part(seq uint64, hash string) string { return k.incident(seq) + "part/" + hash }

// recordEnd ends the range [head, recordEnd) that holds head, meta and every part, and no alert.
func (k etcdKeys) recordEnd(seq uint64) string { return k.incident(seq) + "part0" }

func (k etcdKeys) alerts(seq uint64) string { return k.incident(seq) + "alert/" }

// alert orders an incident's alerts by fingerprint, then startsAt (sign-flipped seconds and
// nanoseconds in hex, which sort as times do), then status.
func (k etcdKeys) alert(seq uint64, id alertID) string {
	return fmt.Sprintf("%s%s/%016x%08x/%s", k.alerts(seq), url.PathEscape(id.fingerprint),
		uint64(id.startsAt.Unix())^(1<<63), uint32(id.startsAt.Nanosecond()), url.PathEscape(id.status))
}

// parseAlert is alert's inverse, given the incident's alerts directory.
func (k etcdKeys) parseAlert(seq uint64, key string) (alertID, bool) {
	rest, ok := strings.CutPrefix(key, k.alerts(seq))
	if !ok {
		return alertID{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || len(parts[1]) != 24 {
		return alertID{}, false
	}
	fp, err1 := url.PathUnescape(parts[0])
	st, err2 := url.PathUnescape(parts[2])
	t, err3 := hex.DecodeString(parts[1])
	if err1 != nil || err2 != nil || err3 != nil {
		return alertID{}, false
	}
	var sec uint64
	var nsec uint32
	for _, b := range t[:8] {
		sec = sec<<8 | uint64(b)
	}
	for _, b := range t[8:] {
		nsec = nsec<<8 | uint32(b)
	}
	return alertID{fingerprint: fp, startsAt: time.Unix(int64(sec^(1<<63)), int64(nsec)), status: st}, true
}

func (k etcdKeys) state(key string) string { return k.prefix + "state/" + key }

func (k etcdKeys) pruneCount() string { return k.prefix + "prune/count" }
func (k etcdKeys) pruneFloor() string { return k.prefix + "prune/floor" }

// formatSeq and parseSeq are how sequences are stored as values (seq, open/, latest/).
func formatSeq(seq uint64) []byte { return strconv.AppendUint(nil, seq, 10) }

func parseSeq(v []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stored sequence %q: %w", v, err)
	}
	return n, nil
}
