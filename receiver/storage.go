package receiver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/remediate"
)

// Journal is what the receiver needs of the incident store, whichever backend: the webhook
// ingests, the API and incidents_open read, /-/ready pings. *incident.Journal and
// *incident.EtcdStore implement it.
type Journal interface {
	Ingest(ctx context.Context, ds []incident.Delivery) ([]incident.IngestResult, error)
	Get(ctx context.Context, id string) (*incident.Incident, error)
	List(ctx context.Context, openOnly bool) ([]*incident.Incident, error)
	// Page lists summaries, one bounded page at a time (the API's list and the console).
	Page(ctx context.Context, q incident.PageQuery) (*incident.Page, error)
	// Ping says whether the store answers: the journal is open, etcd has a quorum.
	Ping(ctx context.Context) error
}

// store is a whole incident store as Run opens it: the receiver's part, the runbook's, Close.
type store interface {
	Journal
	remediate.Store
	pruner
	io.Closer
}

// Storage backends, --storage.backend.
const (
	StorageBBolt = "bbolt" // one embedded file under --storage.path: a single replica
	StorageEtcd  = "etcd"  // shared by every replica through etcd
)

// openStore opens the backend opts names; cfg.Storage has etcd's credentials and timeouts.
func openStore(ctx context.Context, opts Options, cfg *config.Config, logger *slog.Logger) (store, error) {
	switch opts.StorageBackend {
	case "", StorageBBolt:
		if err := os.MkdirAll(opts.StoragePath, 0o750); err != nil {
			return nil, fmt.Errorf("create storage directory: %w", err)
		}
		return incident.Open(filepath.Join(opts.StoragePath, incident.FileName), incident.Options{
			Registerer: opts.Registerer, Logger: logger,
		})
	case StorageEtcd:
		eo, err := etcdOptions(opts, cfg.Storage.Etcd)
		if err != nil {
			return nil, err
		}
		eo.Registerer, eo.Logger = opts.Registerer, logger
		return incident.OpenEtcd(ctx, eo)
	}
	return nil, fmt.Errorf("--storage.backend=%q: want %s or %s", opts.StorageBackend, StorageBBolt, StorageEtcd)
}

// etcdOptions turns the flags and the config file's storage.etcd into the store's options.
// The password is read here and goes nowhere but the etcd client.
func etcdOptions(opts Options, ec config.EtcdStorageConfig) (incident.EtcdOptions, error) {
	eo := incident.EtcdOptions{
		Endpoints: opts.EtcdEndpoints, Prefix: opts.EtcdPrefix, Username: ec.Username,
		DialTimeout: time.Duration(ec.DialTimeout), RequestTimeout: time.Duration(ec.RequestTimeout),
	}
	if len(eo.Endpoints) == 0 {
		return eo, errors.New("--storage.backend=etcd needs --storage.etcd.endpoints (comma-separated client URLs)")
	}
	for _, ep := range eo.Endpoints {
		if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return eo, fmt.Errorf("--storage.etcd.endpoints: %q is not an http:// or https:// URL", ep)
		}
	}
	if !strings.HasPrefix(eo.Prefix, "/") {
		return eo, fmt.Errorf("--storage.etcd.prefix=%q: must start with /", eo.Prefix)
	}
	if ec.PasswordFile != "" {
		b, err := os.ReadFile(ec.PasswordFile)
		if err != nil {
			return eo, fmt.Errorf("storage.etcd.password_file: %w", err)
		}
		eo.Password = strings.TrimRight(string(b), "\r\n")
	}
	if ec.TLSEnabled(eo.Endpoints) {
		var err error
		var tc *tls.Config
		if tc, err = commoncfg.NewTLSConfig(&ec.TLSConfig); err != nil {
			return eo, fmt.Errorf("storage.etcd.tls_config: %w", err)
		}
		eo.TLS = tc
	}
	return eo, nil
}

// describeStorage is the store for the startup log line.
func describeStorage(opts Options) []any {
	if opts.StorageBackend == StorageEtcd {
		return []any{"storage", StorageEtcd, "etcd_endpoints", strings.Join(opts.EtcdEndpoints, ","), "etcd_prefix", opts.EtcdPrefix}
	}
	return []any{"storage", opts.StoragePath}
}
