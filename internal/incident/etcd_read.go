package incident

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// listPage is how many incidents one read of List fetches.
const listPage = 32

// Get returns the incident with its alerts, or an error wrapping ErrNotFound.
func (s *EtcdStore) Get(ctx context.Context, id string) (*Incident, error) {
	defer s.m.observe(opGet, time.Now())
	seq, err := ParseID(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	inc, _, err := s.readIncident(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", id, err)
	}
	return inc, nil
}

// List returns incidents newest first, with their alerts; openOnly keeps the open ones. Every
// page is read at the revision of the first read: the list is one snapshot.
func (s *EtcdStore) List(ctx context.Context, openOnly bool) ([]*Incident, error) {
	defer s.m.observe(opList, time.Now())
	for attempt := 0; ; attempt++ {
		out, err := s.list(ctx, openOnly)
		// etcd compacted the snapshot's revision away while the pages were read: take a new one.
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 2 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		return out, nil
	}
}

func (s *EtcdStore) list(ctx context.Context, openOnly bool) ([]*Incident, error) {
	seqs, rev, err := s.listSeqs(ctx, openOnly)
	if err != nil {
		return nil, err
	}
	out := make([]*Incident, 0, len(seqs))
	for page := range slices.Chunk(seqs, listPage) {
		incs, err := s.readPage(ctx, page, rev)
		if err != nil {
			return nil, err
		}
		out = append(out, incs...)
	}
	return out, nil
}

// listSeqs is the sequences List returns, newest first, and the revision they were read at.
func (s *EtcdStore) listSeqs(ctx context.Context, openOnly bool) ([]uint64, int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var seqs []uint64
	if openOnly {
		resp, err := s.cli.Get(ctx, s.keys.openDir(), clientv3.WithPrefix())
		if err != nil {
			return nil, 0, s.failed("read open incidents", err)
		}
		for _, kv := range resp.Kvs {
			seq, err := parseSeq(kv.Value)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: %w", kv.Key, err)
			}
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		slices.Reverse(seqs)
		return seqs, resp.Header.Revision, nil
	}
	// Sequences are given out one by one in the transaction that writes the incident, and
	// Prune records the floor below which every incident is deleted: floor…seq are every
	// incident, but for those Prune deleted above the floor (readPage skips them).
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.keys.seq()), clientv3.OpGet(s.keys.pruneFloor())).Commit()
	if err != nil {
		return nil, 0, s.failed("read the incident sequence", err)
	}
	var last, floor uint64
	for i, p := range []*uint64{&last, &floor} {
		if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			if *p, err = parseSeq(kvs[0].Value); err != nil {
				return nil, 0, err
			}
		}
	}
	for seq := last; seq >= max(floor, 1); seq-- {
		seqs = append(seqs, seq)
	}
	return seqs, resp.Header.Revision, nil
}

// readPage reads whole incidents at revision rev, in the order of seqs, in one request.
func (s *EtcdStore) readPage(ctx context.Context, seqs []uint64, rev int64) ([]*Incident, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ops := make([]clientv3.Op, len(seqs))
	for i, seq := range seqs {
		ops[i] = clientv3.OpGet(s.keys.incident(seq), clientv3.WithPrefix(), clientv3.WithRev(rev))
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, s.failed("read incidents", err)
	}
	out := make([]*Incident, 0, len(seqs))
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			continue // written after the sequence was read
		}
		inc, _, err := s.decodeIncident(seqs[i], kvs)
		if err != nil {
			return nil, err
		}
		out = append(out, inc)
	}
	return out, nil
}

// readIncident reads a whole incident, alerts included, and what a write over it compares.
func (s *EtcdStore) readIncident(ctx context.Context, seq uint64) (*Incident, *storedRecord, error) {
	resp, err := s.cli.Get(ctx, s.keys.incident(seq), clientv3.WithPrefix())
	if err != nil {
		return nil, nil, s.failed("read incident", err)
	}
	return s.decodeIncident(seq, resp.Kvs)
}

// decodeIncident rebuilds an incident from every key under its directory.
func (s *EtcdStore) decodeIncident(seq uint64, kvs []*mvccpb.KeyValue) (*Incident, *storedRecord, error) {
	inc, old, err := s.decodeRecordKVs(seq, kvs)
	if err != nil {
		return nil, nil, err
	}
	alerts, count := s.keys.alerts(seq), s.keys.count(seq)
	inc.Alerts = []AlertRecord{}
	for _, kv := range kvs {
		if string(kv.Key) == count {
			c, err := decodeCounts(kv.Value)
			if err != nil {
				return nil, nil, fmt.Errorf("incident %s: %w", inc.ID, err)
			}
			inc.DroppedAlerts = int(c.dropped)
		}
		if !bytes.HasPrefix(kv.Key, []byte(alerts)) {
			continue
		}
		a, err := decodeAlert(kv.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("decode alert of %s: %w", inc.ID, err)
		}
		inc.Alerts = append(inc.Alerts, a)
	}
	// First received first: the order a human reads a timeline in.
	sort.SliceStable(inc.Alerts, func(a, b int) bool { return inc.Alerts[a].ReceivedAt.Before(inc.Alerts[b].ReceivedAt) })
	return inc, old, nil
}

// decodeRecordKVs rebuilds an incident's record, alerts aside, from its head, meta and parts
// among kvs (other keys are ignored).
func (s *EtcdStore) decodeRecordKVs(seq uint64, kvs []*mvccpb.KeyValue) (*Incident, *storedRecord, error) {
	headKey, metaKey, partDir := s.keys.head(seq), s.keys.meta(seq), s.keys.part(seq, "")
	var head *mvccpb.KeyValue
	old := &storedRecord{}
	parts := map[string]*mvccpb.KeyValue{}
	for _, kv := range kvs {
		switch k := string(kv.Key); {
		case k == headKey:
			head = kv
		case k == metaKey:
			old.meta = kv.Value
		case strings.HasPrefix(k, partDir):
			parts[k[len(partDir):]] = kv
		}
	}
	if head == nil {
		return nil, nil, fmt.Errorf("incident %s: %w", FormatID(seq), ErrNotFound)
	}
	inc, err := decodeRecord(head.Value, func(hash string) ([]byte, bool) {
		kv, ok := parts[hash]
		if !ok {
			return nil, false
		}
		return kv.Value, true
	})
	if err != nil {
		return nil, nil, fmt.Errorf("decode incident %s: %w", FormatID(seq), err)
	}
	old.headRev = head.ModRevision
	if old.parts, err = headParts(head.Value); err != nil {
		return nil, nil, fmt.Errorf("decode incident %s: %w", FormatID(seq), err)
	}
	for hash, kv := range parts {
		if !old.parts[hash] && kv.ModRevision < head.ModRevision {
			old.orphans = append(old.orphans, hash)
		}
	}
	return inc, old, nil
}

// Update applies fn to the stored incident and returns the result once etcd committed it: a
// compare-and-swap on the incident's head, retried with a fresh read when another writer
// committed in between, so fn may run more than once and must derive its change from the
// incident it is given. fn gets a private copy, alerts included; its changes to Alerts are
// ignored (alerts are Ingest's). An error from fn aborts the update and is returned as is.
// Closing an incident frees its (cluster, alertname) for a new one; reopening a closed incident
// is ErrConflict. Under a fenced ctx (WithFence), a lost fence fails with ErrFenced.
func (s *EtcdStore) Update(ctx context.Context, id string, fn func(*Incident) error) (*Incident, error) {
	defer s.m.observeWrite(opUpdate, time.Now())
	seq, err := ParseID(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	unlock, err := s.writing.lock(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", id, s.failed("wait for this replica's other writer", err))
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		inc, ok, err := s.tryUpdate(ctx, seq, fn)
		if err != nil || ok {
			return inc, err
		}
		if err := s.backoff(ctx, attempt); err != nil {
			return nil, fmt.Errorf("update %s: %w", id, err)
		}
	}
}

// tryUpdate is one read-modify-write of Update; false says another writer came first.
func (s *EtcdStore) tryUpdate(ctx context.Context, seq uint64, fn func(*Incident) error) (*Incident, bool, error) {
	id := FormatID(seq)
	inc, old, err := s.readIncident(ctx, seq)
	if err != nil {
		return nil, false, fmt.Errorf("update %s: %w", id, err)
	}
	closed, fnErr, err := applyUpdate(inc, seq, fn, s.now())
	if fnErr != nil {
		return nil, false, fnErr
	}
	if err != nil {
		return nil, false, fmt.Errorf("update %s: %w", id, err)
	}
	rec, err := encodeRecord(inc)
	if err != nil {
		return nil, false, err
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.keys.head(seq)), "=", old.headRev)}
	ops, early, err := s.recordOps(seq, old, rec)
	if err != nil {
		return nil, false, fmt.Errorf("update %s: %w", id, err)
	}
	if len(early) > 0 {
		// Too much for one request: the new parts go first, the head names them only if they
		// are all still there when it commits.
		if err := s.writeParts(ctx, seq, rec, early); err != nil {
			return nil, false, fmt.Errorf("update %s: %w", id, err)
		}
		for _, hash := range early {
			cmps = append(cmps, clientv3.Compare(clientv3.Version(s.keys.part(seq, hash)), ">", 0))
		}
	}
	if closed {
		k := s.keys.open(group{inc.Cluster, inc.Alertname})
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return nil, false, fmt.Errorf("update %s: %w", id, s.failed("read the open incident of its group", err))
		}
		if len(resp.Kvs) > 0 && string(resp.Kvs[0].Value) == string(formatSeq(seq)) {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", resp.Kvs[0].ModRevision))
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	if len(cmps)+1 > s.maxOps || len(ops) > s.maxOps {
		return nil, false, fmt.Errorf("update %s: the record needs %d comparisons and %d operations, over the store's limit of %d per transaction", id, len(cmps)+1, len(ops), s.maxOps)
	}
	if _, err := s.commit(ctx, cmps, ops); err != nil {
		if errors.Is(err, errConflict) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("update %s: %w", id, err)
	}
	return inc, true, nil
}

// recordOps are the operations that write rec over old in the head's transaction, and the new
// parts that do not fit in it and must be written before (early). Parts that old names and rec
// does not, and orphans, are deleted, as many as the transaction has room for.
func (s *EtcdStore) recordOps(seq uint64, old *storedRecord, rec *encodedRecord) (ops []clientv3.Op, early []string, err error) {
	if n := len(s.keys.head(seq)) + len(rec.head); n > s.maxBytes {
		return nil, nil, fmt.Errorf("record head of %d bytes is over the store's %d-byte limit per transaction", n, s.maxBytes)
	}
	add, drop := recordChange(old, rec)
	ops = append(ops, clientv3.OpPut(s.keys.head(seq), string(rec.head)))
	if old == nil || !bytes.Equal(old.meta, rec.meta) {
		ops = append(ops, clientv3.OpPut(s.keys.meta(seq), string(rec.meta)))
	}
	// The head's transaction keeps half the budget for itself and the operations that join it.
	budget, room := s.maxBytes/2-len(rec.head), s.maxOps/2
	for _, hash := range add {
		p := rec.parts[hash]
		if n := len(s.keys.part(seq, hash)) + len(p); n > s.maxBytes {
			return nil, nil, fmt.Errorf("a part of %d bytes is over the store's %d-byte limit per transaction", n, s.maxBytes)
		}
		if len(early) == 0 && len(p) <= budget && room > 0 {
			ops = append(ops, clientv3.OpPut(s.keys.part(seq, hash), string(p)))
			budget, room = budget-len(p), room-1
			continue
		}
		early = append(early, hash)
	}
	for _, hash := range drop {
		if len(ops) >= s.maxOps-4 {
			break // left for the next update to sweep
		}
		ops = append(ops, clientv3.OpDelete(s.keys.part(seq, hash)))
	}
	return ops, early, nil
}

// writeParts writes parts of rec in as few transactions as the limits allow.
func (s *EtcdStore) writeParts(ctx context.Context, seq uint64, rec *encodedRecord, hashes []string) error {
	var ops []clientv3.Op
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return s.failed("write record parts", err)
		}
		ops, size = nil, 0
		return nil
	}
	for _, hash := range hashes {
		k, v := s.keys.part(seq, hash), rec.parts[hash]
		if len(ops) > 0 && (size+len(k)+len(v) > s.maxBytes || len(ops) >= s.maxOps) {
			if err := flush(); err != nil {
				return err
			}
		}
		ops = append(ops, clientv3.OpPut(k, string(v)))
		size += len(k) + len(v)
	}
	return flush()
}

// Page returns at most q.Limit summaries, newest first, matching q, starting after q.Cursor,
// as the journal's Page does. Incidents are read a few at a time at one revision, so memory is
// bounded by the page; a state or cluster that matches few incidents reads further back.
func (s *EtcdStore) Page(ctx context.Context, q PageQuery) (*Page, error) {
	defer s.m.observe(opList, time.Now())
	state, limit, before, err := q.resolve()
	if err != nil {
		return nil, err
	}
	seqs, rev, err := s.listSeqs(ctx, state == StateOpen)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	if before > 0 {
		seqs = slices.DeleteFunc(seqs, func(seq uint64) bool { return seq >= before })
	}
	page := &Page{Incidents: make([]Summary, 0, min(limit, 16))}
	for chunk := range slices.Chunk(seqs, listPage) {
		incs, err := s.readPage(ctx, chunk, rev)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		for _, inc := range incs {
			sum := SummaryOf(inc)
			if !q.keep(state, sum) {
				continue
			}
			if len(page.Incidents) == limit {
				page.Next = page.Incidents[limit-1].ID
				return page, nil
			}
			page.Incidents = append(page.Incidents, sum)
		}
	}
	return page, nil
}
