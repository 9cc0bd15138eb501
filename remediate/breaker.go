package remediate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// BreakerState is a cluster breaker's state as exported by breaker_state{cluster}.
type BreakerState int

const (
	BreakerClosed   BreakerState = 0
	BreakerHalfOpen BreakerState = 1
	BreakerOpen     BreakerState = 2
)

func (s BreakerState) String() string {
	switch s {
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "closed"
}

func fromGobreaker(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	case gobreaker.StateOpen:
		return BreakerOpen
	}
	return BreakerClosed
}

// stateStore is the part of the journal that keeps small per-cluster documents.
type stateStore interface {
	// GetState returns the document under key, nil when there is none.
	GetState(ctx context.Context, key string) ([]byte, error)
	// UpdateState atomically replaces the document under key with fn's answer to it.
	UpdateState(ctx context.Context, key string, fn func(cur []byte) ([]byte, error)) error
}

// errRemediationFailed is what a failed remediation reports to its cluster's breaker.
var errRemediationFailed = errors.New("remediation failed")

// breakers holds one sony/gobreaker breaker per cluster. The remediation a breaker guards lasts
// minutes and must survive restarts, so it is not wrapped in Execute: the guard reads State()
// and the closing step reports the result through a zero-length Execute. gobreaker's
// DistributedCircuitBreaker keeps counts, state and expiry in a SharedDataStore, which here is
// the journal: that is what makes the state survive a restart.
type breakers struct {
	mu       sync.Mutex
	store    *journalBreakerStore
	settings gobreaker.Settings
	byName   map[string]*gobreaker.DistributedCircuitBreaker[struct{}]
	onState  func(cluster string, s BreakerState)
}

func newBreakers(j stateStore, cfg config.BreakerConfig, onState func(string, BreakerState)) *breakers {
	b := &breakers{
		store:   &journalBreakerStore{j: j, owner: randomOwner()},
		byName:  map[string]*gobreaker.DistributedCircuitBreaker[struct{}]{},
		onState: onState,
	}
	b.settings = breakerSettings(cfg)
	return b
}

func breakerSettings(cfg config.BreakerConfig) gobreaker.Settings {
	n := max(cfg.ConsecutiveFailures, 1)
	return gobreaker.Settings{
		MaxRequests: 1, // one half-open trial
		Timeout:     max(time.Duration(cfg.Cooldown), time.Millisecond),
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= n },
	}
}

// SetConfig applies new settings to breakers created from now on and to existing ones on their
// next use (their persisted state is kept).
func (b *breakers) SetConfig(cfg config.BreakerConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settings = breakerSettings(cfg)
	clear(b.byName)
}

// with runs fn on the cluster's breaker with ctx available to the journal-backed store; the
// store interface of gobreaker has no context parameter, and breaker calls are serialized here
// anyway, so the context is handed over through the store for the duration of the call.
func (b *breakers) with(ctx context.Context, cluster string, fn func(*gobreaker.DistributedCircuitBreaker[struct{}]) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.store.ctx = ctx
	defer func() { b.store.ctx = nil }()
	lock := breakerMutexKey(cluster)
	if err := b.store.acquire(lock); err != nil {
		return fmt.Errorf("breaker of cluster %s: %w", cluster, err)
	}
	b.store.held = lock
	defer func() {
		b.store.held = ""
		_ = b.store.release(lock) // if it fails, the lock frees itself after breakerLockTTL
	}()
	cb, ok := b.byName[cluster]
	if !ok {
		var err error
		if cb, err = b.load(cluster); err != nil {
			return err
		}
		b.byName[cluster] = cb
	}
	if err := fn(cb); err != nil {
		return err
	}
	s, err := cb.State()
	if err != nil {
		return fmt.Errorf("read breaker of cluster %s: %w", cluster, err)
	}
	if b.onState != nil {
		b.onState(cluster, fromGobreaker(s))
	}
	return nil
}

// load creates the cluster's breaker from its shared state. gobreaker's constructor dereferences
// the breaker it failed to build (a nil pointer) when the store fails under it, and takes a read
// that fails for a missing state, resetting the breaker: so the state is read and checked here
// first, the constructor runs on that copy (it cannot fail), and an initial state it writes is
// stored afterwards.
func (b *breakers) load(cluster string) (*gobreaker.DistributedCircuitBreaker[struct{}], error) {
	key := breakerStateKey(cluster)
	raw, err := b.store.j.GetState(b.store.ctx, key)
	if err != nil {
		return nil, fmt.Errorf("load breaker of cluster %s: %w", cluster, err)
	}
	if raw != nil {
		var probe gobreaker.SharedState
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("load breaker of cluster %s: state document %s is not gobreaker's: %w", cluster, key, err)
		}
	}
	b.store.boot = &bootState{key: key, data: raw}
	defer func() { b.store.boot = nil }()
	st := b.settings
	st.Name = cluster
	cb, err := gobreaker.NewDistributedCircuitBreaker[struct{}](b.store, st)
	if err != nil {
		return nil, fmt.Errorf("load breaker of cluster %s: %w", cluster, err)
	}
	if boot := b.store.boot; boot.dirty {
		b.store.boot = nil
		if err := b.store.SetData(key, boot.data); err != nil {
			return nil, fmt.Errorf("load breaker of cluster %s: %w", cluster, err)
		}
	}
	return cb, nil
}

// State reads (and, past the cool-down, advances to half-open) the cluster's breaker.
func (b *breakers) State(ctx context.Context, cluster string) (BreakerState, error) {
	var st BreakerState
	err := b.with(ctx, cluster, func(cb *gobreaker.DistributedCircuitBreaker[struct{}]) error {
		s, err := cb.State()
		if err != nil {
			return fmt.Errorf("read breaker of cluster %s: %w", cluster, err)
		}
		st = fromGobreaker(s)
		return nil
	})
	return st, err
}

// Record reports one finished remediation. A result while the breaker is open (another
// incident's failure opened it meanwhile) is not counted: gobreaker rejects it.
func (b *breakers) Record(ctx context.Context, cluster string, success bool) error {
	return b.with(ctx, cluster, func(cb *gobreaker.DistributedCircuitBreaker[struct{}]) error {
		_, err := cb.Execute(func() (struct{}, error) {
			if success {
				return struct{}{}, nil
			}
			return struct{}{}, errRemediationFailed
		})
		switch {
		case err == nil, errors.Is(err, errRemediationFailed),
			errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			return nil
		}
		return fmt.Errorf("record remediation result on breaker of cluster %s: %w", cluster, err)
	})
}

// journalBreakerStore is gobreaker's SharedDataStore on the journal's state documents. Within a
// process breakers.mu serializes every use; the lock is for replicas sharing the store: a lock
// document taken and released with the store's atomic read-modify-write, so that one replica's
// read-change-write of a breaker (a follower's State() moving it to half-open, the leader's
// Record) never interleaves with another's.
type journalBreakerStore struct {
	j     stateStore
	ctx   context.Context
	owner string // this process
	held  string // the lock breakers.with holds around the whole call
	boot  *bootState
}

// bootState is the one state document gobreaker's constructor reads and may write, served from
// memory while breakers.load runs it.
type bootState struct {
	key   string
	data  []byte
	dirty bool
}

// breakerLock is the lock document of one breaker.
type breakerLock struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"` // a lock its holder did not release (it died) is free after this
}

const (
	breakerLockTTL  = 10 * time.Second // longer than any read-change-write of a breaker
	breakerLockWait = 5 * time.Second  // how long Lock waits for another replica's lock
)

var errBreakerLocked = errors.New("breaker locked by another replica")

// Lock is gobreaker's: a no-op for the lock breakers.with already holds (gobreaker reads the
// shared state before it locks, so the lock must cover the whole call, from outside).
func (s *journalBreakerStore) Lock(name string) error {
	if name == s.held {
		return nil
	}
	return s.acquire(name)
}

// Unlock is gobreaker's; the lock breakers.with holds is released by breakers.with.
func (s *journalBreakerStore) Unlock(name string) error {
	if name == s.held {
		return nil
	}
	return s.release(name)
}

// acquire takes the lock document name, waiting up to breakerLockWait for another replica's.
func (s *journalBreakerStore) acquire(name string) error {
	if s.ctx == nil {
		return errors.New("breaker store used outside breakers.with")
	}
	deadline := time.Now().Add(breakerLockWait)
	for {
		err := s.j.UpdateState(s.ctx, name+"/lock", func(cur []byte) ([]byte, error) {
			var l breakerLock
			if cur != nil && json.Unmarshal(cur, &l) == nil && l.Owner != s.owner && time.Now().Before(l.Until) {
				return nil, errBreakerLocked
			}
			return json.Marshal(breakerLock{Owner: s.owner, Until: time.Now().Add(breakerLockTTL)})
		})
		if err == nil || !errors.Is(err, errBreakerLocked) {
			return err
		}
		if time.Now().After(deadline) || !sleep(s.ctx, 20*time.Millisecond, nil) {
			return fmt.Errorf("lock %s: %w", name, err)
		}
	}
}

// release frees the lock document name if it is still ours.
func (s *journalBreakerStore) release(name string) error {
	return s.j.UpdateState(s.ctx, name+"/lock", func(cur []byte) ([]byte, error) {
		var l breakerLock
		if cur != nil && json.Unmarshal(cur, &l) == nil && l.Owner != s.owner {
			return cur, nil // not ours (we lost it after breakerLockTTL): leave it
		}
		return nil, nil
	})
}

func (s *journalBreakerStore) GetData(name string) ([]byte, error) {
	if s.ctx == nil {
		return nil, errors.New("breaker store used outside breakers.with")
	}
	if s.boot != nil && s.boot.key == name {
		return s.boot.data, nil
	}
	raw, err := s.j.GetState(s.ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return raw, nil
}

func (s *journalBreakerStore) SetData(name string, data []byte) error {
	if s.ctx == nil {
		return errors.New("breaker store used outside breakers.with")
	}
	if s.boot != nil && s.boot.key == name {
		s.boot.data, s.boot.dirty = data, true
		return nil
	}
	err := s.j.UpdateState(s.ctx, name, func([]byte) ([]byte, error) { return data, nil })
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// randomOwner names this process among the replicas that lock breakers.
func randomOwner() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// breakerMutexKey is the key gobreaker's DistributedCircuitBreaker locks for a cluster's breaker
// ("gobreaker:mutex:" + its name).
func breakerMutexKey(cluster string) string { return "gobreaker:mutex:" + cluster }

// breakerStateKey is the key of a cluster breaker's shared state ("gobreaker:state:" + its name).
func breakerStateKey(cluster string) string { return "gobreaker:state:" + cluster }
