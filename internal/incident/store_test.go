package incident_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/incident/storetest"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

func TestJournalConformance(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		New: func(t *testing.T) storetest.Opener {
			path := filepath.Join(t.TempDir(), incident.FileName)
			return func(t *testing.T, s storetest.Setup) storetest.Store {
				j, err := incident.Open(path, incident.Options{Now: s.Now, Registerer: s.Registerer})
				require.NoError(t, err)
				return j
			}
		},
	})
}

func TestEtcdConformance(t *testing.T) {
	// Requests far under etcd's default limit (1.5 MiB) prove that no record, however large,
	// needs one request that big.
	endpoint := testenv.StartEtcd(t, func(c *embed.Config) { c.MaxRequestBytes = 640 << 10 })
	cli := etcdClient(t, endpoint)
	var n atomic.Int64
	storetest.Run(t, storetest.Backend{
		Shared: true,
		New: func(t *testing.T) storetest.Opener {
			prefix := fmt.Sprintf("/test/%d/", n.Add(1))
			return func(t *testing.T, s storetest.Setup) storetest.Store {
				return openEtcd(t, incident.EtcdOptions{Endpoints: []string{endpoint}, Prefix: prefix, Now: s.Now, Registerer: s.Registerer})
			}
		},
		Campaign: func(t *testing.T, key string) incident.Fence {
			resp, err := cli.Put(t.Context(), key, "leader")
			require.NoError(t, err)
			got, err := cli.Get(t.Context(), key)
			require.NoError(t, err)
			require.Equal(t, resp.Header.Revision, got.Kvs[0].ModRevision)
			return incident.Fence{Key: key, Revision: got.Kvs[0].CreateRevision}
		},
		Resign: func(t *testing.T, key string) {
			_, err := cli.Delete(t.Context(), key)
			require.NoError(t, err)
		},
	})
}

func openEtcd(t *testing.T, opts incident.EtcdOptions) *incident.EtcdStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := incident.OpenEtcd(ctx, opts)
	require.NoError(t, err)
	return s
}

func etcdClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
