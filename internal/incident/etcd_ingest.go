package incident

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxIngestBatch bounds the deliveries one round of group commit takes (one call bigger than
// that is a round alone); the round is then cut to what one transaction carries.
const maxIngestBatch = 1024

// errTxnTooLarge says a transaction would exceed the store's limits: the batch is cut in two.
var errTxnTooLarge = errors.New("transaction over the store's limits")

// ingestCall is one Ingest waiting for its group commit.
type ingestCall struct {
	ds   []Delivery
	res  []IngestResult
	err  error
	done chan struct{}
}

// Ingest records deliveries as ingest (ingest.go) routes them and returns once etcd committed
// them. The routing is decided inside etcd transactions that compare every key they read, so
// replicas ingesting the same group at once still open one incident: the loser of a race reads
// again and attaches. Concurrent calls of one replica share transactions (group commit). A
// notification too large for one transaction is committed in several, each whole: if one
// fails, the call fails (the webhook answers 503) with the earlier ones kept, and the sender's
// retry counts those alerts one delivery more. Ingest is never fenced.
func (s *EtcdStore) Ingest(ctx context.Context, ds []Delivery) ([]IngestResult, error) {
	if ok, err := startIngest(ctx, ds); !ok {
		return nil, err
	}
	for i := range ds {
		if n := approxAlertBytes(&ds[i].Alert); n > s.maxBytes/2 {
			return nil, fmt.Errorf("ingest %d alerts: alert %s is about %d bytes, over the etcd store's limit of %d for one alert",
				len(ds), ds[i].Alert.Fingerprint, n, s.maxBytes/2)
		}
	}
	defer s.m.observeWrite(opIngest, time.Now())
	c := &ingestCall{ds: ds, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("ingest: the store is closed")
	}
	s.pending = append(s.pending, c)
	if !s.committing {
		s.committing = true
		s.wg.Add(1)
		// The round commits other callers' deliveries too: it must not end with this caller's
		// context, nor carry a fence.
		go s.commitLoop(WithFence(context.WithoutCancel(ctx), Fence{}))
	}
	s.mu.Unlock()
	// Not abandoned on ctx cancellation: the outcome of a write in flight would be unknown.
	// Each transaction of the round is bounded by the request timeout.
	<-c.done
	if c.err != nil {
		return nil, fmt.Errorf("ingest %d alerts: %w", len(ds), c.err)
	}
	return c.res, nil
}

// commitLoop commits the calls waiting, round after round, until none is left.
func (s *EtcdStore) commitLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		n, total := 0, 0
		for n < len(s.pending) && (n == 0 || total+len(s.pending[n].ds) <= maxIngestBatch) {
			total += len(s.pending[n].ds)
			n++
		}
		if n == 0 {
			s.committing, s.pending = false, nil
			s.mu.Unlock()
			return
		}
		batch := s.pending[:n:n]
		s.pending = s.pending[n:]
		s.mu.Unlock()
		s.commitCalls(ctx, batch)
	}
}

// commitCalls commits the deliveries of calls together; a call whose deliveries were all
// committed before a failure succeeds.
func (s *EtcdStore) commitCalls(ctx context.Context, calls []*ingestCall) {
	var all []Delivery
	for _, c := range calls {
		all = append(all, c.ds...)
	}
	res, err := s.ingestAll(ctx, all)
	off := 0
	for _, c := range calls {
		end := off + len(c.ds)
		if end <= len(res) {
			c.res = res[off:end]
		} else {
			c.err = err
		}
		off = end
		close(c.done)
	}
}

// ingestAll commits ds in as few transactions as the limits allow, in order. On failure it
// returns the results of the deliveries committed before.
func (s *EtcdStore) ingestAll(ctx context.Context, ds []Delivery) ([]IngestResult, error) {
	now := s.now()
	out := make([]IngestResult, 0, len(ds))
	for len(out) < len(ds) {
		rest := ds[len(out):]
		n := s.fit(rest)
		for {
			res, err := s.ingestTxn(ctx, rest[:n], now)
			if errors.Is(err, errTxnTooLarge) && n > 1 {
				n /= 2
				continue
			}
			if err != nil {
				return out, err
			}
			out = append(out, res...)
			break
		}
	}
	return out, nil
}

// fit is how many of ds one transaction is expected to carry: each distinct alert a comparison
// and a write, each group a few more (open, latest, meta, and a new incident's keys).
func (s *EtcdStore) fit(ds []Delivery) int {
	groups, alerts := map[group]bool{}, map[alertID]bool{}
	size := 0
	for i := range ds {
		g := group{ds[i].Cluster, ds[i].Alertname}
		a := alertID{ds[i].Alert.Fingerprint, ds[i].Alert.StartsAt, ds[i].Alert.Status}
		newG, newA := !groups[g], !alerts[a]
		ops := len(alerts) + 6*len(groups) + 2
		if newA {
			ops++
			size += approxAlertBytes(&ds[i].Alert)
		}
		if newG {
			ops += 6
		}
		if i > 0 && (ops > s.maxOps || size > s.maxBytes*3/4) {
			return i
		}
		groups[g], alerts[a] = true, true
	}
	return len(ds)
}

// approxAlertBytes is about the size of an alert's key and value in etcd.
func approxAlertBytes(a *AlertRecord) int {
	n := 400 + len(a.GroupKey) + len(a.Receiver) + len(a.ExternalURL) + 2*len(a.Fingerprint) + 2*len(a.Status)
	for k, v := range a.Labels {
		n += len(k) + len(v) + 6
	}
	return n
}

// ingestTxn runs the ingest algorithm over ds in one etcd transaction, again from fresh reads
// after each conflict, until it commits or the request timeout.
func (s *EtcdStore) ingestTxn(ctx context.Context, ds []Delivery, now time.Time) ([]IngestResult, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	for attempt := 0; ; attempt++ {
		// The first attempt reads what it does not know without a quorum round (serializable):
		// a stale read only fails a comparison. Attempts after a conflict read through a quorum.
		tx := &etcdIngest{s: s, ctx: ctx, reads: map[string]kvRead{}, used: map[string]bool{},
			writes: map[string]kvWrite{}, records: map[uint64]*storedRecord{}, serializable: attempt == 0}
		if err := tx.prefetch(ds); err != nil {
			return nil, err
		}
		res, err := ingest(tx, ds, now)
		if errors.Is(err, ErrNotFound) && attempt < 3 {
			// Routed by a remembered pointer to an incident Prune deleted since (here or on
			// another replica): read everything afresh.
			s.known = nil
			continue
		}
		if err != nil {
			return nil, err
		}
		rev, err := tx.commit()
		switch {
		case err == nil:
			tx.remember(rev)
			return res, nil
		case !errors.Is(err, errConflict):
			return nil, err
		}
		s.known = nil
		if err := s.backoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// maxKnown bounds the store's memory of keys (about 1 KiB each).
const maxKnown = 4096

// remember keeps what the transaction read and wrote, as of its commit at rev.
func (t *etcdIngest) remember(rev int64) {
	if len(t.s.known)+len(t.used)+len(t.writes) > maxKnown || t.s.known == nil {
		t.s.known = make(map[string]kvRead, maxKnown)
	}
	for k := range t.used {
		t.s.known[k] = t.reads[k]
	}
	for k, w := range t.writes {
		if w.del {
			t.s.known[k] = kvRead{}
		} else {
			t.s.known[k] = kvRead{val: w.val, modRev: rev}
		}
	}
}

// etcdIngest is one attempt of an ingest transaction: what it read (and at which revision),
// what it will write. Its reads see its writes. Commit compares every key the algorithm read,
// so the writes land only on the state they were decided from.
type etcdIngest struct {
	s       *EtcdStore
	ctx     context.Context
	reads   map[string]kvRead
	used    map[string]bool // keys the algorithm read
	writes  map[string]kvWrite
	order   []string    // keys of writes, first write first
	ranges  []rangeRead // directories the algorithm listed
	records map[uint64]*storedRecord
	// serializable reads are served by any member without a quorum round.
	serializable bool
}

type kvRead struct {
	val    []byte
	modRev int64 // 0: absent
}

type kvWrite struct {
	val []byte
	del bool
}

// rangeRead is a directory listed at a revision: nothing in it may change before the commit.
type rangeRead struct {
	prefix string
	rev    int64
}

// prefetch reads, in two requests, what the algorithm will most likely read for ds: the open
// and latest incident of each group, then the meta and alert keys of those incidents.
func (t *etcdIngest) prefetch(ds []Delivery) error {
	var keys []string
	seen := map[string]bool{}
	want := func(k string) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for i := range ds {
		g := group{ds[i].Cluster, ds[i].Alertname}
		if ds[i].Known {
			want(t.s.keys.open(g))
		}
		want(t.s.keys.latest(g))
	}
	if err := t.readMany(keys); err != nil {
		return err
	}
	keys = keys[:0]
	for i := range ds {
		d := &ds[i]
		g := group{d.Cluster, d.Alertname}
		r, ok := t.reads[t.s.keys.open(g)]
		if !d.Known || !ok || r.modRev == 0 {
			r = t.reads[t.s.keys.latest(g)]
		}
		if r.modRev == 0 {
			continue // a new incident
		}
		seq, err := parseSeq(r.val)
		if err != nil {
			return err
		}
		want(t.s.keys.meta(seq))
		want(t.s.keys.count(seq))
		want(t.s.keys.alert(seq, alertID{d.Alert.Fingerprint, d.Alert.StartsAt, d.Alert.Status}))
	}
	return t.readMany(keys)
}

// readMany reads keys into the transaction's reads: from what the store knows, or from etcd,
// as many per request as a transaction takes.
func (t *etcdIngest) readMany(keys []string) error {
	var missing []string
	for _, k := range keys {
		if r, ok := t.s.known[k]; ok {
			t.reads[k] = r
		} else {
			missing = append(missing, k)
		}
	}
	var opts []clientv3.OpOption
	if t.serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	for chunk := range slices.Chunk(missing, t.s.maxOps) {
		ops := make([]clientv3.Op, len(chunk))
		for i, k := range chunk {
			ops[i] = clientv3.OpGet(k, opts...)
		}
		resp, err := t.s.cli.Txn(t.ctx).Then(ops...).Commit()
		if err != nil {
			return t.s.failed("read", err)
		}
		for i, r := range resp.Responses {
			var kr kvRead
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				kr = kvRead{val: kvs[0].Value, modRev: kvs[0].ModRevision}
			}
			t.reads[chunk[i]] = kr
		}
	}
	return nil
}

// get reads key through the transaction; nil when absent.
func (t *etcdIngest) get(key string) ([]byte, error) {
	if w, ok := t.writes[key]; ok {
		if w.del {
			return nil, nil
		}
		return w.val, nil
	}
	if _, ok := t.reads[key]; !ok {
		if err := t.readMany([]string{key}); err != nil {
			return nil, err
		}
	}
	t.used[key] = true
	return t.reads[key].val, nil
}

func (t *etcdIngest) put(key string, val []byte) {
	if _, ok := t.writes[key]; !ok {
		t.order = append(t.order, key)
	}
	t.writes[key] = kvWrite{val: val}
}

func (t *etcdIngest) del(key string) {
	if _, ok := t.writes[key]; !ok {
		t.order = append(t.order, key)
	}
	t.writes[key] = kvWrite{del: true}
}

func (t *etcdIngest) seqAt(key string) (uint64, bool, error) {
	v, err := t.get(key)
	if err != nil || v == nil {
		return 0, false, err
	}
	seq, err := parseSeq(v)
	return seq, err == nil, err
}

func (t *etcdIngest) openSeq(g group) (uint64, bool, error)   { return t.seqAt(t.s.keys.open(g)) }
func (t *etcdIngest) latestSeq(g group) (uint64, bool, error) { return t.seqAt(t.s.keys.latest(g)) }

func (t *etcdIngest) setOpen(g group, seq uint64) error {
	t.put(t.s.keys.open(g), formatSeq(seq))
	return nil
}

func (t *etcdIngest) setLatest(g group, seq uint64) error {
	t.put(t.s.keys.latest(g), formatSeq(seq))
	return nil
}

func (t *etcdIngest) nextSeq() (uint64, error) {
	last, _, err := t.seqAt(t.s.keys.seq())
	if err != nil {
		return 0, err
	}
	t.put(t.s.keys.seq(), formatSeq(last+1))
	return last + 1, nil
}

func (t *etcdIngest) meta(seq uint64) (incidentMeta, bool, error) {
	v, err := t.get(t.s.keys.meta(seq))
	if err != nil {
		return 0, false, err
	}
	m, ok := storedMeta(v)
	return m, ok, nil
}

func (t *etcdIngest) record(seq uint64) (*Incident, error) {
	resp, err := t.s.cli.Get(t.ctx, t.s.keys.head(seq), clientv3.WithRange(t.s.keys.recordEnd(seq)))
	if err != nil {
		return nil, t.s.failed("read incident", err)
	}
	inc, old, err := t.s.decodeRecordKVs(seq, resp.Kvs)
	if err != nil {
		return nil, err
	}
	t.records[seq] = old
	head := t.s.keys.head(seq)
	t.reads[head] = kvRead{modRev: old.headRev}
	t.used[head] = true
	return inc, nil
}

// putRecord writes the record over the one read (or as a new incident): every new part goes in
// this transaction, which an ingest's small changes (a timeline event, a count) keep small.
func (t *etcdIngest) putRecord(seq uint64, inc *Incident) error {
	rec, err := encodeRecord(inc)
	if err != nil {
		return err
	}
	old := t.records[seq]
	add, drop := recordChange(old, rec)
	t.put(t.s.keys.head(seq), rec.head)
	if old == nil || string(old.meta) != string(rec.meta) {
		t.put(t.s.keys.meta(seq), rec.meta)
	}
	for _, hash := range add {
		t.put(t.s.keys.part(seq, hash), rec.parts[hash])
	}
	for _, hash := range drop {
		t.del(t.s.keys.part(seq, hash))
	}
	return nil
}

func (t *etcdIngest) alert(seq uint64, id alertID) ([]byte, error) {
	return t.get(t.s.keys.alert(seq, id))
}

func (t *etcdIngest) putAlert(seq uint64, id alertID, v []byte) error {
	t.put(t.s.keys.alert(seq, id), v)
	return nil
}

func (t *etcdIngest) counts(seq uint64) (alertCounts, bool, error) {
	v, err := t.get(t.s.keys.count(seq))
	if err != nil {
		return alertCounts{}, false, err
	}
	return storedCounts(seq, v)
}

func (t *etcdIngest) putCounts(seq uint64, c alertCounts) error {
	t.put(t.s.keys.count(seq), c.encode())
	return nil
}

func (t *etcdIngest) alertIDs(seq uint64) ([]alertID, error) {
	dir := t.s.keys.alerts(seq)
	resp, err := t.s.cli.Get(t.ctx, dir, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, t.s.failed("list alerts", err)
	}
	t.ranges = append(t.ranges, rangeRead{prefix: dir, rev: resp.Header.Revision})
	seen := map[string]bool{}
	var ids []alertID
	add := func(k string) error {
		if seen[k] {
			return nil
		}
		seen[k] = true
		id, ok := t.s.keys.parseAlert(seq, k)
		if !ok {
			return fmt.Errorf("alert key %q: unknown format", k)
		}
		ids = append(ids, id)
		return nil
	}
	for _, kv := range resp.Kvs {
		if err := add(string(kv.Key)); err != nil {
			return nil, err
		}
	}
	for _, k := range t.order {
		if strings.HasPrefix(k, dir) && !t.writes[k].del {
			if err := add(k); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

// commit sends the transaction and returns its revision; errConflict when something it read
// changed.
func (t *etcdIngest) commit() (int64, error) {
	used := make([]string, 0, len(t.used))
	for k := range t.used {
		used = append(used, k)
	}
	slices.Sort(used)
	cmps := make([]clientv3.Cmp, 0, len(used)+len(t.ranges))
	size := 0
	for _, k := range used {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", t.reads[k].modRev))
		size += len(k)
	}
	for _, r := range t.ranges {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.prefix), "<", r.rev+1).WithPrefix())
		size += 2 * len(r.prefix)
	}
	ops := make([]clientv3.Op, 0, len(t.order))
	for _, k := range t.order {
		w := t.writes[k]
		if w.del {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			ops = append(ops, clientv3.OpPut(k, string(w.val)))
		}
		size += len(k) + len(w.val)
	}
	if len(cmps) > t.s.maxOps || len(ops) > t.s.maxOps || size > t.s.maxBytes {
		return 0, fmt.Errorf("%w: %d comparisons, %d operations, %d bytes (limits %d, %d, %d)",
			errTxnTooLarge, len(cmps), len(ops), size, t.s.maxOps, t.s.maxOps, t.s.maxBytes)
	}
	return t.s.commit(t.ctx, cmps, ops)
}
