// Package storetest is the conformance suite every incident store passes: the bbolt journal and
// the etcd store run the same tests, so that the runbook and the API see one behaviour whichever
// backend runs.
package storetest

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Store is every method of an incident store.
type Store interface {
	Ingest(ctx context.Context, ds []incident.Delivery) ([]incident.IngestResult, error)
	Get(ctx context.Context, id string) (*incident.Incident, error)
	List(ctx context.Context, openOnly bool) ([]*incident.Incident, error)
	Update(ctx context.Context, id string, fn func(*incident.Incident) error) (*incident.Incident, error)
	GetState(ctx context.Context, key string) ([]byte, error)
	UpdateState(ctx context.Context, key string, fn func(cur []byte) ([]byte, error)) error
	OpenCount() (int, error)
	Page(ctx context.Context, q incident.PageQuery) (*incident.Page, error)
	Ping(ctx context.Context) error
	Prune(ctx context.Context, cutoff time.Time) (int, error)
	IncidentCounts(ctx context.Context) (open, total int, err error)
	ID() string
	Close() error
}

// Setup is what a test asks of a store it opens.
type Setup struct {
	Now        func() time.Time      // nil: time.Now
	Registerer prometheus.Registerer // nil: no metrics
}
