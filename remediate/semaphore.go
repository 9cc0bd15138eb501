package remediate

import (
	"context"
	"fmt"
	"sync"
)

// priority orders zmyctl calls competing for the engine's bounded concurrency: stopping the
// bleeding outranks saving snapshots, which outranks reading state for diagnostics.
type priority int

const (
	prioContain  priority = iota // raft suspend and its verification
	prioRecovery                 // snapshot save, quorum recover, raft resume
	prioDiag                     // state reads, snapshot lists, plans, abort reports
	numPriorities
)

// prioSemaphore is a counting semaphore whose waiters are served highest priority first (FIFO
// within a priority). x/sync/semaphore is FIFO only, which would let a queue of snapshot calls
// delay a containment call of another incident.
type prioSemaphore struct {
	mu      sync.Mutex
	limit   int
	held    int
	waiters [numPriorities][]chan struct{}
}

func newPrioSemaphore(limit int) *prioSemaphore {
	return &prioSemaphore{limit: max(1, limit)}
}

// Acquire waits for a slot or for ctx to end.
func (s *prioSemaphore) Acquire(ctx context.Context, p priority) error {
	s.mu.Lock()
	if s.held < s.limit && s.queued() == 0 {
		s.held++
		s.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	s.waiters[p] = append(s.waiters[p], ready)
	s.mu.Unlock()

	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		select {
		case <-ready:
			// Granted while we gave up: hand the slot on.
			s.releaseLocked()
		default:
			q := s.waiters[p]
			for i, w := range q {
				if w == ready {
					s.waiters[p] = append(q[:i:i], q[i+1:]...)
					break
				}
			}
		}
		return fmt.Errorf("waiting for a command slot: %w", context.Cause(ctx))
	}
}

// Release frees a slot, granting it to the first waiter of the highest priority.
func (s *prioSemaphore) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *prioSemaphore) releaseLocked() {
	s.held--
	s.fillLocked()
}

// fillLocked grants free slots to waiters, highest priority first.
func (s *prioSemaphore) fillLocked() {
	for s.held < s.limit && s.queued() > 0 {
		s.held++
		s.grantLocked()
	}
}

// SetLimit changes the limit (config reload); extra holders drain naturally.
func (s *prioSemaphore) SetLimit(limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = max(1, limit)
	s.fillLocked()
}

func (s *prioSemaphore) grantLocked() {
	for p := range s.waiters {
		if len(s.waiters[p]) > 0 {
			w := s.waiters[p][0]
			s.waiters[p] = s.waiters[p][1:]
			close(w)
			return
		}
	}
}

func (s *prioSemaphore) queued() int {
	n := 0
	for _, q := range s.waiters {
		n += len(q)
	}
	return n
}
