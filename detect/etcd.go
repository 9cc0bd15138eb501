package detect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultEtcdDialTimeout bounds connecting to one etcd endpoint when the cluster sets none.
const DefaultEtcdDialTimeout = 2 * time.Second

// EtcdReading is the SOP-ZMY-005 etcd check: every endpoint's health and the node lease keys.
type EtcdReading struct {
	Endpoints []EndpointHealth
	Present   []string // node ids whose lease key exists under key_prefix
	Missing   []string // configured node ids whose key is gone (lease expired: node dead or cut off)
}

// EndpointHealth is one etcd endpoint, as `etcdctl endpoint health` would report it.
type EndpointHealth struct {
	Endpoint string
	Healthy  bool
	Took     time.Duration
	Error    string
}

// Healthy reports whether every endpoint is healthy and every node holds its lease key.
func (e *EtcdReading) Healthy() bool {
	if len(e.Endpoints) == 0 || len(e.Missing) > 0 {
		return false
	}
	for _, ep := range e.Endpoints {
		if !ep.Healthy {
			return false
		}
	}
	return true
}

// KeyPrefix is the cluster's node lease key prefix: etcd.key_prefix or /zmy/<cluster>/nodes/.
func KeyPrefix(t Target) string {
	if p := t.Cluster.Etcd.KeyPrefix; p != "" {
		return p
	}
	return "/zmy/" + t.Cluster.Name + "/nodes/"
}

// ProbeEtcdLeases checks each of the cluster's etcd endpoints on its own (Status, then a
// linearizable read of the node lease keys, which needs a quorum), within ctx's deadline.
func ProbeEtcdLeases(ctx context.Context, t Target) Result {
	if t.Cluster == nil || t.Cluster.Etcd == nil || len(t.Cluster.Etcd.Endpoints) == 0 {
		return Result{Status: StatusError, Reason: "cluster declares no etcd endpoints"}
	}
	prefix := KeyPrefix(t)
	eps := t.Cluster.Etcd.Endpoints
	reading := &EtcdReading{Endpoints: make([]EndpointHealth, len(eps))}
	present := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			h, keys := checkEndpoint(ctx, ep, prefix, time.Duration(t.Cluster.Etcd.DialTimeout))
			mu.Lock()
			defer mu.Unlock()
			reading.Endpoints[i] = h
			for _, k := range keys {
				present[strings.TrimPrefix(k, prefix)] = true
			}
		})
	}
	wg.Wait()

	for _, n := range t.Cluster.Nodes {
		if present[n.ID] {
			reading.Present = append(reading.Present, n.ID)
		} else {
			reading.Missing = append(reading.Missing, n.ID)
		}
	}
	var bad []string
	for _, h := range reading.Endpoints {
		if !h.Healthy {
			bad = append(bad, h.Endpoint+": "+h.Error)
		}
	}
	r := Result{Status: StatusOK, Data: reading,
		Value: fmt.Sprintf("endpoints healthy %d/%d; lease keys %d/%d under %s",
			len(eps)-len(bad), len(eps), len(reading.Present), len(t.Cluster.Nodes), prefix)}
	var why []string
	if len(bad) > 0 {
		why = append(why, "unhealthy etcd endpoints: "+list(bad))
	}
	if len(reading.Missing) > 0 {
		why = append(why, "no lease key for "+list(reading.Missing))
	}
	switch {
	case len(bad) == len(eps):
		r.Status = StatusError
	case len(why) > 0:
		r.Status = StatusFail
	}
	r.Reason = strings.Join(why, "; ")
	return r
}

// checkEndpoint talks to one endpoint only, so a healthy peer cannot answer for a dead one.
func checkEndpoint(ctx context.Context, ep, prefix string, dialTimeout time.Duration) (EndpointHealth, []string) {
	if dialTimeout <= 0 {
		dialTimeout = DefaultEtcdDialTimeout
	}
	start := time.Now()
	h := EndpointHealth{Endpoint: ep}
	fail := func(what string, err error) (EndpointHealth, []string) {
		h.Took, h.Error = time.Since(start), fmt.Sprintf("%s: %v", what, err)
		return h, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{ep}, DialTimeout: dialTimeout, Context: ctx,
		Logger: zap.NewNop(), AutoSyncInterval: 0,
	})
	if err != nil {
		return fail("connect", err)
	}
	defer cli.Close()
	st, err := cli.Status(ctx, ep)
	if err != nil {
		return fail("status", err)
	}
	if len(st.Errors) > 0 {
		return fail("status", fmt.Errorf("alarms: %s", strings.Join(st.Errors, ", ")))
	}
	if st.Leader == 0 {
		return fail("status", fmt.Errorf("no leader"))
	}
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fail("read lease keys", err)
	}
	keys := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	slices.Sort(keys)
	h.Healthy, h.Took = true, time.Since(start)
	return h, keys
}
