package incident

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Get returns the incident with its alerts, or an error wrapping ErrNotFound.
func (j *Journal) Get(ctx context.Context, id string) (*Incident, error) {
	defer j.m.observe(opGet, time.Now())
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", id, err)
	}
	seq, err := ParseID(id)
	if err != nil {
		return nil, err
	}
	var inc *Incident
	err = j.db.View(func(tx *bolt.Tx) error {
		var err error
		inc, err = loadFull(tx, seq)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", id, err)
	}
	return inc, nil
}

// List returns incidents newest first, with their alerts; openOnly keeps the open ones.
func (j *Journal) List(ctx context.Context, openOnly bool) ([]*Incident, error) {
	defer j.m.observe(opList, time.Now())
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	var out []*Incident
	err := j.db.View(func(tx *bolt.Tx) error {
		var seqs []uint64
		if openOnly {
			err := tx.Bucket(bucketOpen).ForEach(func(_, v []byte) error {
				seqs = append(seqs, binary.BigEndian.Uint64(v))
				return nil
			})
			if err != nil {
				return err
			}
			slices.Sort(seqs)
			slices.Reverse(seqs)
		} else {
			c := tx.Bucket(bucketIncidents).Cursor()
			for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
				seqs = append(seqs, binary.BigEndian.Uint64(k))
			}
		}
		out = make([]*Incident, 0, len(seqs))
		for _, seq := range seqs {
			if err := ctx.Err(); err != nil {
				return err
			}
			inc, err := loadFull(tx, seq)
			if err != nil {
				return err
			}
			out = append(out, inc)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	return out, nil
}

// Update durably applies fn to the stored incident and returns the result. fn gets a private
// copy, alerts included; its changes to Alerts are ignored (alerts are Ingest's). An error from
// fn aborts the update and is returned as is. Closing an incident (Step = StepClosed) frees its
// (cluster, alertname) for a new one; reopening a closed incident is ErrConflict.
func (j *Journal) Update(ctx context.Context, id string, fn func(*Incident) error) (*Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("update %s: %w", id, err)
	}
	seq, err := ParseID(id)
	if err != nil {
		return nil, err
	}
	var fnErr error
	var out *Incident
	defer j.m.observeWrite(opUpdate, time.Now())
	err = j.db.Update(func(tx *bolt.Tx) error {
		inc, err := loadFull(tx, seq)
		if err != nil {
			return err
		}
		closed, ferr, err := applyUpdate(inc, seq, fn, j.now())
		if fnErr = ferr; ferr != nil {
			return ferr
		}
		if err != nil {
			return err
		}
		if closed {
			gk := groupKey(inc.Cluster, inc.Alertname)
			open := tx.Bucket(bucketOpen)
			if v := open.Get(gk); v != nil && binary.BigEndian.Uint64(v) == seq {
				if err := open.Delete(gk); err != nil {
					return err
				}
			}
		}
		out = inc
		return putIncident(tx.Bucket(bucketIncidents), tx.Bucket(bucketMeta), seq, inc)
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", id, err)
	}
	return out, nil
}

func getIncident(b *bolt.Bucket, seq uint64) (*Incident, error) {
	v := b.Get(seqKey(seq))
	if v == nil {
		return nil, fmt.Errorf("incident %s: %w", FormatID(seq), ErrNotFound)
	}
	inc := &Incident{}
	if err := json.Unmarshal(v, inc); err != nil {
		return nil, fmt.Errorf("decode incident %s: %w", FormatID(seq), err)
	}
	return inc, nil
}

// putIncident stores the incident without its alerts, which live in their own bucket so that the
// engine's frequent updates never rewrite them, and its meta byte.
func putIncident(incs, metas *bolt.Bucket, seq uint64, inc *Incident) error {
	stored := *inc
	stored.Alerts, stored.DroppedAlerts = nil, 0
	data, err := json.Marshal(&stored)
	if err != nil {
		return fmt.Errorf("encode incident %s: %w", inc.ID, err)
	}
	if err := incs.Put(seqKey(seq), data); err != nil {
		return err
	}
	return metas.Put(seqKey(seq), []byte{byte(metaOf(inc))})
}

func loadFull(tx *bolt.Tx, seq uint64) (*Incident, error) {
	inc, err := getIncident(tx.Bucket(bucketIncidents), seq)
	if err != nil {
		return nil, err
	}
	prefix := seqKey(seq)
	if v := tx.Bucket(bucketCounts).Get(prefix); v != nil {
		cs, err := decodeCounts(v)
		if err != nil {
			return nil, fmt.Errorf("incident %s: %w", inc.ID, err)
		}
		inc.DroppedAlerts = int(cs.dropped)
	}
	c := tx.Bucket(bucketAlerts).Cursor()
	inc.Alerts = []AlertRecord{}
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		a, err := decodeAlert(v)
		if err != nil {
			return nil, fmt.Errorf("decode alert of %s: %w", inc.ID, err)
		}
		inc.Alerts = append(inc.Alerts, a)
	}
	// First received first: the order a human reads a timeline in.
	sort.SliceStable(inc.Alerts, func(a, b int) bool { return inc.Alerts[a].ReceivedAt.Before(inc.Alerts[b].ReceivedAt) })
	return inc, nil
}
