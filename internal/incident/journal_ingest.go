package incident

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Ingest durably records deliveries (fsync; concurrent calls share one commit through bbolt's
// Batch), as ingest (ingest.go) routes them: one open incident per (cluster, alertname),
// duplicates counted on their alert, resolutions and unknown clusters as documented there.
// Results are in the order of ds. Ingest returns only after the data is on disk.
func (j *Journal) Ingest(ctx context.Context, ds []Delivery) ([]IngestResult, error) {
	if ok, err := startIngest(ctx, ds); !ok {
		return nil, err
	}
	now := j.now()
	var results []IngestResult
	defer j.m.observeWrite(opIngest, time.Now())
	fn := func(tx *bolt.Tx) error {
		// Batch may run this function again after a failed shared commit; start from scratch.
		var err error
		results, err = ingest(newBoltIngest(tx), ds, now)
		return err
	}
	// Group commit: concurrent ingests join one bbolt Batch and share its fsync. A lone ingest
	// commits at once instead of waiting BatchDelay for company that is not coming.
	// A write in progress is not abandoned on ctx cancellation: its outcome would be unknown.
	var err error
	if j.ingesting.Add(1) == 1 {
		err = j.db.Update(fn)
	} else {
		err = j.db.Batch(fn)
	}
	j.ingesting.Add(-1)
	if err != nil {
		return nil, fmt.Errorf("ingest %d alerts: %w", len(ds), err)
	}
	return results, nil
}

// boltIngest is a bbolt read-write transaction as the ingest algorithm sees it.
type boltIngest struct {
	incs, alerts, metas, open, latest, tallies *bolt.Bucket
}

func newBoltIngest(tx *bolt.Tx) *boltIngest {
	b := &boltIngest{
		incs: tx.Bucket(bucketIncidents), alerts: tx.Bucket(bucketAlerts), metas: tx.Bucket(bucketMeta),
		open: tx.Bucket(bucketOpen), latest: tx.Bucket(bucketLatest), tallies: tx.Bucket(bucketCounts),
	}
	// These buckets are keyed by the incident sequence, so new data lands at their end: full
	// pages (the default 0.5 suits random inserts) halve what each commit writes and fsyncs.
	b.incs.FillPercent, b.alerts.FillPercent, b.metas.FillPercent, b.tallies.FillPercent = 0.9, 0.9, 0.9, 0.9
	return b
}

func seqOf(v []byte) (uint64, bool, error) {
	if v == nil {
		return 0, false, nil
	}
	return binary.BigEndian.Uint64(v), true, nil
}

func (b *boltIngest) openSeq(g group) (uint64, bool, error) {
	return seqOf(b.open.Get(groupKey(g.cluster, g.alertname)))
}

func (b *boltIngest) latestSeq(g group) (uint64, bool, error) {
	return seqOf(b.latest.Get(groupKey(g.cluster, g.alertname)))
}

func (b *boltIngest) setOpen(g group, seq uint64) error {
	return b.open.Put(groupKey(g.cluster, g.alertname), seqKey(seq))
}

func (b *boltIngest) setLatest(g group, seq uint64) error {
	return b.latest.Put(groupKey(g.cluster, g.alertname), seqKey(seq))
}

func (b *boltIngest) nextSeq() (uint64, error) { return b.incs.NextSequence() }

func (b *boltIngest) meta(seq uint64) (incidentMeta, bool, error) {
	m, ok := storedMeta(b.metas.Get(seqKey(seq)))
	return m, ok, nil
}

func (b *boltIngest) record(seq uint64) (*Incident, error) { return getIncident(b.incs, seq) }

func (b *boltIngest) putRecord(seq uint64, inc *Incident) error {
	return putIncident(b.incs, b.metas, seq, inc)
}

func (b *boltIngest) alert(seq uint64, id alertID) ([]byte, error) {
	return b.alerts.Get(alertKey(seq, id.fingerprint, id.startsAt, id.status)), nil
}

func (b *boltIngest) putAlert(seq uint64, id alertID, v []byte) error {
	return b.alerts.Put(alertKey(seq, id.fingerprint, id.startsAt, id.status), v)
}

func (b *boltIngest) alertIDs(seq uint64) ([]alertID, error) {
	prefix := seqKey(seq)
	c := b.alerts.Cursor()
	var ids []alertID
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id, ok := parseAlertKey(k)
		if !ok {
			return nil, fmt.Errorf("alert key of %s: unknown format", FormatID(seq))
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (b *boltIngest) counts(seq uint64) (alertCounts, bool, error) {
	return storedCounts(seq, b.tallies.Get(seqKey(seq)))
}

func (b *boltIngest) putCounts(seq uint64, c alertCounts) error {
	return b.tallies.Put(seqKey(seq), c.encode())
}
