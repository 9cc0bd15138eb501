package incident

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// pruneConflicts is how many times one Prune reads a batch again after another writer changed
// what it read, before it leaves the rest to its next run.
const pruneConflicts = 10

// etcdPruneTarget is an incident a prune deletes, with what its transaction compares.
type etcdPruneTarget struct {
	pruneTarget
	headRev int64
	keys    int // about how many keys it holds
}

// Prune deletes the closed incidents closed before cutoff, as the journal's Prune does: a
// few heads read per request, each batch deleted by one transaction that compares every head
// it deletes (an incident written since is read again) and carries at most about
// pruneMaxKeys keys' worth of incidents, each deleted by one range operation over its
// directory, with the group's latest pointer when it names it. Every sequence below the first
// incident kept is then known gone: prune/floor records it, so that listing starts there. Space
// is reclaimed by etcd's own compaction and defragmentation (README: Journal size and
// retention).
func (s *EtcdStore) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	last, floor, err := s.pruneBounds(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	// Each incident takes at most two operations and two comparisons; count and floor two more.
	per := max(1, min(pruneBatch, (s.maxOps-2)/2))
	deleted, conflicts := 0, 0
	keptSeen := false // an incident at or after the floor is kept: the floor stays below it
	for from := floor; from <= last; {
		if err := ctx.Err(); err != nil {
			return deleted, fmt.Errorf("prune: %w", err)
		}
		batch, next, firstKept, stop, err := s.pruneScan(ctx, from, min(last, from+uint64(per)-1), cutoff)
		if err != nil {
			return deleted, fmt.Errorf("prune: %w", err)
		}
		// Every sequence below newFloor is gone once the batch commits (0: the floor stays).
		var newFloor uint64
		if !keptSeen {
			newFloor = next
			if firstKept != 0 {
				newFloor = firstKept
			}
			if newFloor <= floor {
				newFloor = 0
			}
		}
		if len(batch) > 0 {
			start := time.Now()
			err = s.pruneBatch(ctx, batch, newFloor)
			if errors.Is(err, errConflict) {
				if conflicts++; conflicts > pruneConflicts {
					// Another writer keeps changing these keys, most likely another replica
					// pruning the same incidents: the next run goes on from the floor.
					return deleted, nil
				}
				continue // read the same range again
			}
			if err != nil {
				return deleted, fmt.Errorf("prune: %w", err)
			}
			deleted += len(batch)
			if err := pace(ctx, time.Since(start)); err != nil {
				return deleted, err
			}
		} else if newFloor > 0 {
			if err := s.putFloor(ctx, newFloor); err != nil {
				return deleted, fmt.Errorf("prune: %w", err)
			}
		}
		if newFloor > 0 {
			floor = newFloor
		}
		keptSeen = keptSeen || firstKept != 0
		if stop {
			break
		}
		from = next
	}
	return deleted, nil
}

// pruneBounds reads the last sequence given out and the floor below which nothing is left.
func (s *EtcdStore) pruneBounds(ctx context.Context) (last, floor uint64, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.keys.seq()), clientv3.OpGet(s.keys.pruneFloor())).Commit()
	if err != nil {
		return 0, 0, s.failed("read the incident sequence", err)
	}
	floor = 1
	for i, p := range []*uint64{&last, &floor} {
		if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			if *p, err = parseSeq(kvs[0].Value); err != nil {
				return 0, 0, err
			}
		}
	}
	return last, max(floor, 1), nil
}

// pruneScan reads the heads and counts of incidents from…to and judges them. It returns the
// incidents to delete (cut at about pruneMaxKeys keys), the sequence to read next, the first
// incident kept (0: none), and whether no later incident can be pruned.
func (s *EtcdStore) pruneScan(ctx context.Context, from, to uint64, cutoff time.Time) (batch []etcdPruneTarget, next, firstKept uint64, stop bool, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var ops []clientv3.Op
	for seq := from; seq <= to; seq++ {
		ops = append(ops, clientv3.OpGet(s.keys.head(seq)), clientv3.OpGet(s.keys.count(seq)))
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, 0, 0, false, s.failed("read incidents to prune", err)
	}
	keys := 0
	for i := 0; i < len(resp.Responses); i += 2 {
		seq := from + uint64(i/2)
		next = seq + 1
		heads := resp.Responses[i].GetResponseRange().GetKvs()
		if len(heads) == 0 {
			continue // deleted already
		}
		var h recordHead
		if err := json.Unmarshal(heads[0].Value, &h); err != nil {
			return nil, 0, 0, false, fmt.Errorf("decode incident %s: %w", FormatID(seq), err)
		}
		sum, err := summaryOfRecord(seq, h.Core)
		if err != nil {
			return nil, 0, 0, false, err
		}
		v := judge(sum, cutoff)
		if v != pruneDrop {
			if firstKept == 0 {
				firstKept = seq
			}
			if v == pruneStop {
				return batch, seq, firstKept, true, nil
			}
			continue
		}
		n := DefaultMaxAlerts // an incident stored before counts existed
		if cs := resp.Responses[i+1].GetResponseRange().GetKvs(); len(cs) > 0 {
			if c, err := decodeCounts(cs[0].Value); err == nil {
				n = int(c.stored)
			}
		}
		if len(batch) > 0 && keys+n > pruneMaxKeys {
			return batch, seq, firstKept, false, nil
		}
		keys += n + 3
		batch = append(batch, etcdPruneTarget{pruneTarget{seq, group{sum.Cluster, sum.Alertname}}, heads[0].ModRevision, n})
	}
	return batch, next, firstKept, false, nil
}

// pruneBatch deletes batch in one transaction, with the prune count and, when it moves up, the
// floor; errConflict when anything it read changed.
func (s *EtcdStore) pruneBatch(ctx context.Context, batch []etcdPruneTarget, floor uint64) error {
	defer s.m.observe(opPrune, time.Now())
	ctx, cancel := s.bound(ctx)
	defer cancel()
	reads := []clientv3.Op{clientv3.OpGet(s.keys.pruneCount())}
	for _, p := range batch {
		reads = append(reads, clientv3.OpGet(s.keys.latest(p.g)))
	}
	resp, err := s.cli.Txn(ctx).Then(reads...).Commit()
	if err != nil {
		return s.failed("read what a prune changes", err)
	}
	var count uint64
	var countRev int64
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		if count, err = parseSeq(kvs[0].Value); err != nil {
			return err
		}
		countRev = kvs[0].ModRevision
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.keys.pruneCount()), "=", countRev)}
	var ops []clientv3.Op
	for i, p := range batch {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.keys.head(p.seq)), "=", p.headRev))
		ops = append(ops, clientv3.OpDelete(s.keys.incident(p.seq), clientv3.WithPrefix()))
		if kvs := resp.Responses[i+1].GetResponseRange().GetKvs(); len(kvs) > 0 && string(kvs[0].Value) == string(formatSeq(p.seq)) {
			k := s.keys.latest(p.g)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", kvs[0].ModRevision))
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	ops = append(ops, clientv3.OpPut(s.keys.pruneCount(), string(formatSeq(count+uint64(len(batch))))))
	if floor > 0 {
		ops = append(ops, clientv3.OpPut(s.keys.pruneFloor(), string(formatSeq(floor))))
	}
	_, err = s.commit(ctx, cmps, ops)
	return err
}

// putFloor records that every incident below floor is gone. Any replica's floor is true when
// written (sequences are never given out again), so it needs no comparison.
func (s *EtcdStore) putFloor(ctx context.Context, floor uint64) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.cli.Put(ctx, s.keys.pruneFloor(), string(formatSeq(floor))); err != nil {
		return s.failed("write the prune floor", err)
	}
	return nil
}

// IncidentCounts returns how many incidents are open and how many are stored in all, read at
// one revision: the open pointers, and the sequence given out minus what Prune deleted.
func (s *EtcdStore) IncidentCounts(ctx context.Context) (open, total int, err error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.keys.openDir(), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(s.keys.seq()), clientv3.OpGet(s.keys.pruneCount())).Commit()
	if err != nil {
		return 0, 0, s.failed("count incidents", err)
	}
	var seq, pruned uint64
	for i, p := range []*uint64{&seq, &pruned} {
		if kvs := resp.Responses[i+1].GetResponseRange().GetKvs(); len(kvs) > 0 {
			if *p, err = parseSeq(kvs[0].Value); err != nil {
				return 0, 0, err
			}
		}
	}
	return int(resp.Responses[0].GetResponseRange().Count), int(seq - pruned), nil
}
