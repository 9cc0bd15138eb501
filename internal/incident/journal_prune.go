package incident

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// keyPruned holds, in the state bucket, how many incidents Prune ever deleted: the incidents
// stored are the sequence given out minus that.
var keyPruned = []byte("journal/pruned")

// Prune deletes the closed incidents closed before cutoff, with everything they own (alerts,
// meta, counts, the group's latest pointer when it names them), oldest first, at most
// pruneBatch per write transaction; open incidents are never deleted. It returns how many it
// deleted. Candidates are found in short read transactions that do not block ingest; each
// batch is one short write transaction, re-checked inside it. bbolt reuses the freed pages but
// never shrinks the file (README: Journal size and retention).
func (j *Journal) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	deleted := 0
	var from uint64 // the next sequence to examine
	for {
		if err := ctx.Err(); err != nil {
			return deleted, fmt.Errorf("prune: %w", err)
		}
		var batch []pruneTarget
		done := false
		err := j.db.View(func(tx *bolt.Tx) error {
			metas := tx.Bucket(bucketMeta)
			c := tx.Bucket(bucketIncidents).Cursor()
			scanned := 0
			for k, v := c.Seek(seqKey(from)); ; k, v = c.Next() {
				if k == nil {
					done = true
					return nil
				}
				if scanned == pruneScan || len(batch) == pruneBatch {
					return nil
				}
				scanned++
				seq := binary.BigEndian.Uint64(k)
				from = seq + 1
				if m, ok := storedMeta(metas.Get(k)); ok && m&metaOpen != 0 {
					continue // open: kept, nothing to decode
				}
				s, err := summaryOfRecord(seq, v)
				if err != nil {
					return err
				}
				switch judge(s, cutoff) {
				case pruneStop:
					done = true
					return nil
				case pruneDrop:
					batch = append(batch, pruneTarget{seq, group{s.Cluster, s.Alertname}})
				}
			}
		})
		if err != nil {
			return deleted, fmt.Errorf("prune: %w", err)
		}
		if len(batch) > 0 {
			start := time.Now()
			n, done1, err := j.pruneBatch(batch)
			deleted += n
			if err != nil {
				return deleted, err
			}
			if err := pace(ctx, time.Since(start)); err != nil {
				return deleted, err
			}
			if done1 < len(batch) {
				from, done = batch[done1].seq, false // the rest in the next transaction
			}
		}
		if done {
			return deleted, nil
		}
	}
}

// pruneBatch deletes batch in one write transaction, stopping once it deleted pruneMaxKeys keys;
// an incident that is no longer there, or open, is skipped. It returns how many incidents it
// deleted and how many of batch it went through.
func (j *Journal) pruneBatch(batch []pruneTarget) (n, through int, err error) {
	defer j.m.observe(opPrune, time.Now())
	err = j.db.Update(func(tx *bolt.Tx) error {
		n, through = 0, 0
		keys := 0
		incs, metas, counts := tx.Bucket(bucketIncidents), tx.Bucket(bucketMeta), tx.Bucket(bucketCounts)
		alerts, latest, open := tx.Bucket(bucketAlerts), tx.Bucket(bucketLatest), tx.Bucket(bucketOpen)
		for _, p := range batch {
			if keys >= pruneMaxKeys {
				break
			}
			through++
			k := seqKey(p.seq)
			if incs.Get(k) == nil {
				continue
			}
			if m, ok := storedMeta(metas.Get(k)); ok && m&metaOpen != 0 {
				continue
			}
			gk := groupKey(p.g.cluster, p.g.alertname)
			if v := open.Get(gk); v != nil && bytes.Equal(v, k) {
				continue // never happens to a closed incident; never delete what a pointer needs
			}
			var ak [][]byte
			c := alerts.Cursor()
			for key, _ := c.Seek(k); key != nil && bytes.HasPrefix(key, k); key, _ = c.Next() {
				ak = append(ak, bytes.Clone(key))
			}
			keys += len(ak) + 3
			for _, key := range ak {
				if err := alerts.Delete(key); err != nil {
					return err
				}
			}
			for _, b := range []*bolt.Bucket{incs, metas, counts} {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			if v := latest.Get(gk); v != nil && bytes.Equal(v, k) {
				if err := latest.Delete(gk); err != nil {
					return err
				}
			}
			n++
		}
		st := tx.Bucket(bucketState)
		total := uint64(n)
		if v := st.Get(keyPruned); len(v) == 8 {
			total += binary.BigEndian.Uint64(v)
		}
		return st.Put(keyPruned, binary.BigEndian.AppendUint64(nil, total))
	})
	if err != nil {
		return 0, 0, fmt.Errorf("prune: %w", err)
	}
	return n, through, nil
}

// IncidentCounts returns how many incidents are open and how many are stored in all, without
// reading them: the open pointers, and the sequence given out minus what Prune deleted.
func (j *Journal) IncidentCounts(ctx context.Context) (open, total int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("count incidents: %w", err)
	}
	err = j.db.View(func(tx *bolt.Tx) error {
		open = tx.Bucket(bucketOpen).Stats().KeyN
		seq := tx.Bucket(bucketIncidents).Sequence()
		var pruned uint64
		if v := tx.Bucket(bucketState).Get(keyPruned); len(v) == 8 {
			pruned = binary.BigEndian.Uint64(v)
		}
		total = int(seq - pruned)
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("count incidents: %w", err)
	}
	return open, total, nil
}
