package incident

import (
	"context"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Changes signals, through an etcd watch, that an incident was opened or its record changed
// (a step, an approval, an abort), whichever replica wrote it: replicas learn of each other's
// decisions from etcd rather than by calling each other. A signal carries no detail (read the
// store); signals coalesce while unread. The watch is re-established after etcd errors or a
// compaction; a caller that must not miss anything still lists the store now and then, since a
// re-established watch starts from now. The channel closes when ctx ends.
func (s *EtcdStore) Changes(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	notify := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(ch)
		for attempt := 0; ctx.Err() == nil; attempt++ {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			w := s.cli.Watch(wctx, s.keys.prefix, clientv3.WithPrefix(), clientv3.WithFilterDelete())
			for resp := range w {
				if resp.Err() != nil {
					break
				}
				attempt = 0
				for _, ev := range resp.Events {
					if s.isChange(string(ev.Kv.Key)) {
						notify()
						break
					}
				}
			}
			cancel()
			// The watch ended (etcd lost its leader, a compaction, the connection): after a
			// pause, watch again, and signal once, since changes made meanwhile were not seen.
			t := time.NewTimer(min(time.Duration(attempt+1)*200*time.Millisecond, 2*time.Second))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			notify()
		}
	}()
	return ch
}

// isChange tells the keys whose writes are news for a runbook (a new open incident, an
// incident's record) from the rest (deliveries, counts, breaker and lock documents).
func (s *EtcdStore) isChange(key string) bool {
	if strings.HasPrefix(key, s.keys.openDir()) {
		return true
	}
	return strings.HasPrefix(key, s.keys.incidents()) && strings.HasSuffix(key, "/head")
}
