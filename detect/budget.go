package detect

import (
	linkedlist "container/list"
	"context"
	"sync"
)

// priority is a probe round's claim on the daemon's probe budget.
type priority int

const (
	// background is watch mode: dashboards and partition_score, nobody waiting on the answer.
	background priority = iota
	// urgent is a round someone waits on: an incident's confirmation, the recovery gate, a plan.
	urgent
)

func (p priority) String() string {
	if p == urgent {
		return "urgent"
	}
	return "watch"
}

// probeBudget is the daemon's one probe budget (detection.concurrency): how many probes — each
// a zmyctl process or a request to a node, etcd or Redis — run at once across every cluster.
// A freed slot goes to the oldest urgent waiter, then to the oldest background one, so an
// incident's confirmation never queues behind watch rounds. Its size follows reloads.
type probeBudget struct {
	mu       sync.Mutex
	capacity int
	inUse    int
	waiting  [urgent + 1]*linkedlist.List // of *slotWaiter, oldest first, by priority
}

type slotWaiter struct {
	granted chan struct{} // closed when the slot is this waiter's
}

func newProbeBudget(capacity int) *probeBudget {
	b := &probeBudget{capacity: max(capacity, 1)}
	for i := range b.waiting {
		b.waiting[i] = linkedlist.New()
	}
	return b
}

// acquire takes one slot, waiting until one is free or ctx ends (then it returns ctx's error
// and holds nothing). Every successful acquire is paired with one release.
func (b *probeBudget) acquire(ctx context.Context, prio priority) error {
	b.mu.Lock()
	if b.inUse < b.capacity && b.noneWaitingAbove(prio-1) {
		b.inUse++
		b.mu.Unlock()
		return nil
	}
	w := &slotWaiter{granted: make(chan struct{})}
	elem := b.waiting[prio].PushBack(w)
	b.mu.Unlock()

	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.granted:
			// Granted while we gave up: hand it on rather than leak it.
			b.inUse--
			b.grant()
		default:
			b.waiting[prio].Remove(elem)
		}
		b.mu.Unlock()
		return ctx.Err()
	}
}

// release frees a slot taken by acquire.
func (b *probeBudget) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inUse--
	b.grant()
}

// resize sets the budget to capacity slots. Probes already running keep theirs; a smaller
// budget takes effect as they finish.
func (b *probeBudget) resize(capacity int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.capacity = max(capacity, 1)
	b.grant()
}

// noneWaitingAbove reports whether no waiter has a priority above p: a newcomer may take a
// free slot only if nobody more urgent (or, for its own priority, nobody older) waits for it.
func (b *probeBudget) noneWaitingAbove(p priority) bool {
	for q := urgent; q > p; q-- {
		if b.waiting[q].Len() > 0 {
			return false
		}
	}
	return true
}

// grant hands free slots to waiters, most urgent first, oldest first. b.mu is held.
func (b *probeBudget) grant() {
	for b.inUse < b.capacity {
		var front *linkedlist.Element
		var l *linkedlist.List
		for q := urgent; q >= background; q-- {
			if front = b.waiting[q].Front(); front != nil {
				l = b.waiting[q]
				break
			}
		}
		if front == nil {
			return
		}
		l.Remove(front)
		b.inUse++
		close(front.Value.(*slotWaiter).granted)
	}
}
