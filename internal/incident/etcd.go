package incident

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultEtcdPrefix is where an etcd store keeps its keys unless told otherwise.
const DefaultEtcdPrefix = "/zmy-responder/"

// ErrUnavailable says the store did not answer in time: etcd unreachable, or without quorum.
// Nothing was written (or, for a write whose answer was lost, it may have been: the next read
// tells); the caller retries later.
var ErrUnavailable = errors.New("incident store unavailable")

// EtcdOptions configure OpenEtcd. Endpoints (or Client) is required; the rest have defaults.
type EtcdOptions struct {
	Endpoints []string // client URLs, http:// or https://
	// Prefix is the directory of every key of the store; replicas sharing it share the store.
	// Default DefaultEtcdPrefix; a missing trailing "/" is added.
	Prefix   string
	TLS      *tls.Config // nil: plain connections (https endpoints then use the system roots)
	Username string
	Password string
	// DialTimeout bounds connecting at open. Default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds each call (with its conflict retries) beyond the caller's own
	// deadline: etcd unreachable or without quorum fails a call after this long. Default 3s.
	RequestTimeout time.Duration
	// MaxTxnOps is the most operations (and comparisons) one transaction carries: etcd's
	// --max-txn-ops, default 128.
	MaxTxnOps int
	// MaxTxnBytes is the most key and value bytes one transaction carries. Default 512 KiB, a
	// third of etcd's default --max-request-bytes (1.5 MiB).
	MaxTxnBytes int
	// Client, when set, is used instead of dialling Endpoints, and is not closed by Close.
	Client *clientv3.Client

	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

// EtcdStore is the incident store shared by any number of responder replicas through etcd: the
// same records, semantics and API as the bbolt Journal, with every decision that bbolt makes
// inside one file transaction made by an etcd transaction instead (one open incident per
// (cluster, alertname) across replicas, compare-and-swap updates). Writes made under a fenced
// context (WithFence) commit only while the fence's key still has the fence's create revision.
type EtcdStore struct {
	cli       *clientv3.Client
	ownClient bool
	base      context.Context // OpenEtcd's, without its cancellation: for calls that take no context
	keys      etcdKeys
	id        string
	endpoints string
	timeout   time.Duration
	maxOps    int
	maxBytes  int
	now       func() time.Time
	logger    *slog.Logger
	m         *storeMetrics

	// Group commit of Ingest: calls queue in pending; one goroutine at a time commits them.
	mu         sync.Mutex
	pending    []*ingestCall
	committing bool
	closed     bool
	wg         sync.WaitGroup
	// writing serializes this replica's Update and UpdateState of the same key.
	writing keyLocks
	// known is what the last ingests read and wrote, with revisions: the next round reads only
	// what is not there. A stale entry fails its comparison, which empties it. Owned by the
	// goroutine committing (one at a time, handed over under mu).
	known map[string]kvRead
}

// OpenEtcd connects to etcd and opens the store under opts.Prefix, creating its identity the
// first time. etcd must answer within the dial and request timeouts.
func OpenEtcd(ctx context.Context, opts EtcdOptions) (*EtcdStore, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultEtcdPrefix
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 3 * time.Second
	}
	if opts.MaxTxnOps <= 0 {
		opts.MaxTxnOps = 128
	}
	if opts.MaxTxnBytes <= 0 {
		opts.MaxTxnBytes = 512 << 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newStoreMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register store metrics: %w", err)
	}
	s := &EtcdStore{
		cli: opts.Client, base: context.WithoutCancel(ctx), keys: etcdKeys{opts.Prefix}, timeout: opts.RequestTimeout,
		maxOps: opts.MaxTxnOps, maxBytes: opts.MaxTxnBytes, now: opts.Now, logger: opts.Logger, m: m,
	}
	if s.cli == nil {
		if len(opts.Endpoints) == 0 {
			return nil, errors.New("open etcd store: no endpoints")
		}
		s.cli, err = clientv3.New(clientv3.Config{
			Endpoints: opts.Endpoints, TLS: opts.TLS, Username: opts.Username, Password: opts.Password,
			DialTimeout: opts.DialTimeout, Context: s.base, Logger: zap.NewNop(),
			// A dead connection is noticed in seconds, not at the kernel's TCP timeout.
			DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: 3 * time.Second,
			// etcd back after an outage is reached within a second or two: gRPC's default
			// reconnect backoff grows to two minutes.
			DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
				MinConnectTimeout: opts.DialTimeout,
			})},
		})
		if err != nil {
			return nil, fmt.Errorf("open etcd store: %w", err)
		}
		s.ownClient = true
	}
	s.endpoints = strings.Join(s.cli.Endpoints(), ",")
	if s.id, err = s.loadID(ctx); err != nil {
		if s.ownClient {
			_ = s.cli.Close()
		}
		return nil, fmt.Errorf("open etcd store %s at %s: %w", opts.Prefix, s.endpoints, err)
	}
	s.logger.Debug("etcd store opened", "endpoints", s.endpoints, "prefix", opts.Prefix, "id", s.id)
	return s, nil
}

// loadID reads the store's identity, or creates it if this is the store's first opening.
func (s *EtcdStore) loadID(ctx context.Context) (string, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	fresh := newJournalID()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.keys.id()), "=", 0)).
		Then(clientv3.OpPut(s.keys.id(), fresh)).
		Else(clientv3.OpGet(s.keys.id())).Commit()
	if err != nil {
		return "", s.failed("read the store's identity", err)
	}
	if resp.Succeeded {
		return fresh, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 || len(kvs[0].Value) == 0 {
		return "", errors.New("the store's identity key is empty")
	}
	return string(kvs[0].Value), nil
}

// ID identifies the store: every replica sharing the prefix has the same one, and it survives
// restarts. The runbook puts it in ZMY_ACTOR.
func (s *EtcdStore) ID() string { return s.id }

// Client is the store's etcd client, for the parts of the responder that share its connection.
func (s *EtcdStore) Client() *clientv3.Client { return s.cli }

// Close waits for the ingest in progress and closes the connection (unless it was given).
func (s *EtcdStore) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	if !s.ownClient {
		return nil
	}
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd store: %w", err)
	}
	return nil
}

// Ping reports whether etcd answers a linearizable read, which takes a quorum: the readiness of
// a replica.
func (s *EtcdStore) Ping(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("ping: the store is closed")
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.cli.Get(ctx, s.keys.id()); err != nil {
		return s.failed("ping", err)
	}
	return nil
}

// OpenCount is the number of open incidents (the incidents_open gauge), bounded by the request
// timeout.
func (s *EtcdStore) OpenCount() (int, error) {
	ctx, cancel := s.bound(s.base)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.keys.openDir(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, s.failed("count open incidents", err)
	}
	return int(resp.Count), nil
}

// GetState returns the document stored under key, nil when there is none.
func (s *EtcdStore) GetState(ctx context.Context, key string) ([]byte, error) {
	defer s.m.observe(opGetState, time.Now())
	ctx, cancel := s.bound(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.keys.state(key))
	if err != nil {
		return nil, s.failed("get state "+key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// UpdateState replaces the document under key with fn's answer to the current one (nil when
// there is none), atomically: a compare-and-swap on the key's revision, retried with a fresh
// read when another replica wrote in between, so fn may run more than once and must depend on
// cur only. An error from fn aborts and is returned; a nil answer deletes the document. Under a
// fenced ctx, a lost fence fails with ErrFenced.
func (s *EtcdStore) UpdateState(ctx context.Context, key string, fn func(cur []byte) ([]byte, error)) error {
	defer s.m.observeWrite(opUpdateState, time.Now())
	ctx, cancel := s.bound(ctx)
	defer cancel()
	k := s.keys.state(key)
	unlock, err := s.writing.lock(ctx, k)
	if err != nil {
		return fmt.Errorf("update state %s: %w", key, s.failed("wait for this replica's other writer", err))
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return s.failed("update state "+key, err)
		}
		var cur []byte
		var rev int64
		if len(resp.Kvs) > 0 {
			cur, rev = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
		}
		next, err := fn(cur)
		if err != nil {
			return fmt.Errorf("update state %s: %w", key, err)
		}
		if len(k)+len(next) > s.maxBytes {
			return fmt.Errorf("update state %s: document of %d bytes is over the store's %d-byte limit", key, len(next), s.maxBytes)
		}
		op := clientv3.OpDelete(k)
		if next != nil {
			op = clientv3.OpPut(k, string(next))
		}
		_, err = s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", rev)}, []clientv3.Op{op})
		if !errors.Is(err, errConflict) {
			if err != nil {
				return fmt.Errorf("update state %s: %w", key, err)
			}
			return nil
		}
		if err := s.backoff(ctx, attempt); err != nil {
			return fmt.Errorf("update state %s: %w", key, err)
		}
	}
}

// errConflict says a transaction's comparisons failed: another writer came first; read again.
var errConflict = errors.New("conflict")

// commit runs one write transaction: cmps, then the fence of ctx if it has one. It returns the
// revision it committed at, errConflict when a comparison failed, ErrFenced when the fence was
// lost.
func (s *EtcdStore) commit(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (int64, error) {
	f, fenced := FenceFrom(ctx)
	if fenced {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Revision))
	}
	txn := s.cli.Txn(ctx).If(cmps...).Then(ops...)
	if fenced {
		txn = txn.Else(clientv3.OpGet(f.Key, clientv3.WithKeysOnly()))
	}
	resp, err := txn.Commit()
	if err != nil {
		return 0, s.failed("commit", err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	if fenced {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 || kvs[0].CreateRevision != f.Revision {
			return 0, fmt.Errorf("%w: %s no longer has revision %d", ErrFenced, f.Key, f.Revision)
		}
	}
	return 0, errConflict
}

// bound adds the request timeout to ctx.
func (s *EtcdStore) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// backoff waits before the next attempt after a conflict: a few milliseconds, growing, jittered
// so that replicas that collided do not collide again.
func (s *EtcdStore) backoff(ctx context.Context, attempt int) error {
	d := time.Duration(1+rand.IntN(1<<min(attempt, 7))) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return s.failed(fmt.Sprintf("retry after %d conflicting writes of other replicas", attempt+1), ctx.Err())
	}
}

// failed describes an etcd error: no answer in time is ErrUnavailable, naming the endpoints.
func (s *EtcdStore) failed(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded ||
		errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrNoLeader) {
		return fmt.Errorf("%s: %w: etcd %s did not answer within %s: %v", what, ErrUnavailable, s.endpoints, s.timeout, err)
	}
	return fmt.Errorf("%s: etcd %s: %w", what, s.endpoints, err)
}
