package remediate

import (
	"context"
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
		store:   &journalBreakerStore{j: j},
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
	cb, ok := b.byName[cluster]
	if !ok {
		st := b.settings
		st.Name = cluster
		var err error
		cb, err = gobreaker.NewDistributedCircuitBreaker[struct{}](b.store, st)
		if err != nil {
			return fmt.Errorf("load breaker of cluster %s: %w", cluster, err)
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

// journalBreakerStore is gobreaker's SharedDataStore on the journal's state documents. The lock
// is a no-op: breakers.mu already serializes every use within this process, and one daemon
// owns a journal.
type journalBreakerStore struct {
	j   stateStore
	ctx context.Context
}

func (s *journalBreakerStore) Lock(string) error   { return nil }
func (s *journalBreakerStore) Unlock(string) error { return nil }

func (s *journalBreakerStore) GetData(name string) ([]byte, error) {
	if s.ctx == nil {
		return nil, errors.New("breaker store used outside breakers.with")
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
	err := s.j.UpdateState(s.ctx, name, func([]byte) ([]byte, error) { return data, nil })
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
