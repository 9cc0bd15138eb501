package incident

import (
	"context"
	"sync"
)

// keyLocks serializes one replica's writers of the same key (an incident, a state document):
// they would otherwise only collide in etcd and retry, each collision a wasted round trip, and
// under load some would run out of time. Writers of other replicas still meet in etcd's
// comparisons.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	sem  chan struct{} // holds one token while the key is locked
	refs int           // lockers holding or waiting
}

// lock waits for key, or for ctx to end; unlock must be called once lock succeeded.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{sem: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
