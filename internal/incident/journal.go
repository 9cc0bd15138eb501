package incident

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the journal's file inside --storage.path.
const FileName = "journal.db"

// Buckets of the journal file.
var (
	bucketIncidents = []byte("incidents") // seq -> Incident JSON, without Alerts
	bucketAlerts    = []byte("alerts")    // seq|fingerprint|startsAt|status -> AlertRecord JSON
	bucketOpen      = []byte("open")      // cluster/alertname -> seq of its open incident
	bucketLatest    = []byte("latest")    // cluster/alertname -> seq of its newest incident
	bucketMeta      = []byte("meta")      // seq -> incidentMeta, what ingest needs without decoding
	bucketState     = []byte("state")     // key -> document (UpdateState)
	bucketCounts    = []byte("counts")    // seq -> alertCounts: alerts stored, deliveries dropped
)

// Options are the journal's collaborators and tuning. The zero value is usable.
type Options struct {
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
	// BatchDelay is how long the first write of a group commit waits for others to join it
	// (bbolt's MaxBatchDelay); a lone write does not wait at all. Default 2ms, about two commits:
	// at 64 concurrent senders it halved the CPU per delivery against 1ms (BENCHMARKS.md).
	BatchDelay time.Duration
	// BatchSize starts a group commit at once when this many writes are waiting. Default 128.
	BatchSize int
	// LockTimeout bounds the wait for another process's lock on the file. Default 0: a held
	// lock fails Open at once with ErrLocked (two daemons on one storage path is a mistake to
	// report, not a race to wait out).
	LockTimeout time.Duration
}

// Journal is the crash-safe incident store of a single replica: an embedded bbolt file whose
// every write is fsynced before the call returns. It has one writer, so it ignores fences
// (WithFence): leadership among replicas needs the shared etcd store (EtcdStore).
type Journal struct {
	db        *bolt.DB
	id        string
	ingesting atomic.Int64 // Ingest calls in progress
	now       func() time.Time
	logger    *slog.Logger
	m         *storeMetrics
}

// Open opens (creating if needed) the journal at path. A path naming an existing directory means
// <path>/journal.db.
func Open(path string, opts Options) (*Journal, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, FileName)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BatchDelay <= 0 {
		opts.BatchDelay = 2 * time.Millisecond
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 128
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Nanosecond // bbolt tries the lock once, then gives up (0 waits forever)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		// The freelist is rebuilt on open instead of being written by every commit: fewer pages
		// per fsync, which is what group commit is paying for.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Growing the map while a big notification is being written copies every page the
		// transaction touched; start with room for tens of thousands of alerts. This is address
		// space, not memory: only the pages read are resident.
		InitialMmapSize: 64 << 20,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open journal: %w", lockedError(path))
	}
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	db.MaxBatchDelay = opts.BatchDelay
	db.MaxBatchSize = opts.BatchSize
	var id string
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketIncidents, bucketAlerts, bucketOpen, bucketLatest, bucketMeta, bucketState, bucketCounts} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		st := tx.Bucket(bucketState)
		if v := st.Get(keyJournalID); v != nil {
			id = string(v)
			return nil
		}
		id = newJournalID()
		return st.Put(keyJournalID, []byte(id))
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialise journal %s: %w", path, err)
	}
	m, err := newStoreMetrics(opts.Registerer)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("register journal metrics: %w", err)
	}
	j := &Journal{db: db, now: opts.Now, logger: opts.Logger, id: id, m: m}
	j.logger.Debug("journal opened", "path", path)
	return j, nil
}

// keyJournalID holds the journal's identity in the state bucket.
var keyJournalID = []byte("journal/id")

// newJournalID is a random identity, fixed when the journal file is created.
func newJournalID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return "j" + hex.EncodeToString(b)
}

// ID identifies this journal: two responders with their own journals have different ones, and
// it survives restarts. The runbook puts it in ZMY_ACTOR so nodes can tell runbooks apart.
func (j *Journal) ID() string { return j.id }

// Path is the journal file's path.
func (j *Journal) Path() string { return j.db.Path() }

// Close waits for running writes and closes the file.
func (j *Journal) Close() error {
	if err := j.db.Close(); err != nil {
		return fmt.Errorf("close journal: %w", err)
	}
	return nil
}

// OpenCount is the number of open incidents (the incidents_open gauge).
func (j *Journal) OpenCount() (int, error) {
	var n int
	err := j.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketOpen).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count open incidents: %w", err)
	}
	return n, nil
}

// Ping reports whether the journal can be read: always, while it is open.
func (j *Journal) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := j.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// GetState returns the document stored under key, nil when there is none.
func (j *Journal) GetState(ctx context.Context, key string) ([]byte, error) {
	defer j.m.observe(opGetState, time.Now())
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get state %s: %w", key, err)
	}
	var out []byte
	err := j.db.View(func(tx *bolt.Tx) error {
		if data := tx.Bucket(bucketState).Get([]byte(key)); data != nil {
			out = bytes.Clone(data) // valid only inside the transaction
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get state %s: %w", key, err)
	}
	return out, nil
}

// UpdateState durably replaces the document under key with fn's answer to the current one (nil
// when there is none), atomically: no other write of key happens between the read and the
// write. An error from fn aborts and is returned; a nil answer deletes the document.
func (j *Journal) UpdateState(ctx context.Context, key string, fn func(cur []byte) ([]byte, error)) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("update state %s: %w", key, err)
	}
	defer j.m.observeWrite(opUpdateState, time.Now())
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState)
		var cur []byte
		if data := b.Get([]byte(key)); data != nil {
			cur = bytes.Clone(data)
		}
		next, err := fn(cur)
		if err != nil {
			return err
		}
		if next == nil {
			return b.Delete([]byte(key))
		}
		return b.Put([]byte(key), next)
	})
	if err != nil {
		return fmt.Errorf("update state %s: %w", key, err)
	}
	return nil
}
