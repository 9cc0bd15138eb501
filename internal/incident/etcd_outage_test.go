package incident_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/incident/storetest"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// TestEtcdOutage runs the store against a real etcd 3.4 process (Debian etcd-server): killed,
// every call fails within its request timeout with ErrUnavailable naming the endpoint, and
// nothing is half-written; restarted, the store works again on its own, with everything
// committed before.
func TestEtcdOutage(t *testing.T) {
	srv := testenv.StartEtcdServer(t)
	const timeout = time.Second
	s := openEtcd(t, incident.EtcdOptions{Endpoints: []string{srv.Endpoint()}, RequestTimeout: timeout})
	defer s.Close()
	ctx := t.Context()
	_, err := s.Ingest(ctx, []incident.Delivery{storetest.Delivery("east", "aaa", "firing", t0)})
	require.NoError(t, err)
	_, err = s.Update(ctx, "inc-000001", func(inc *incident.Incident) error { inc.Step = incident.StepConfirming; return nil })
	require.NoError(t, err)

	srv.Kill()
	calls := map[string]func(context.Context) error{
		"ingest": func(ctx context.Context) error {
			_, err := s.Ingest(ctx, []incident.Delivery{storetest.Delivery("east", "aaa", "firing", t0), storetest.Delivery("west", "bbb", "firing", t0)})
			return err
		},
		"update": func(ctx context.Context) error {
			_, err := s.Update(ctx, "inc-000001", func(inc *incident.Incident) error { inc.Step = incident.StepContaining; return nil })
			return err
		},
		"update_state": func(ctx context.Context) error {
			return s.UpdateState(ctx, "k", func([]byte) ([]byte, error) { return []byte("v"), nil })
		},
		"get":       func(ctx context.Context) error { _, err := s.Get(ctx, "inc-000001"); return err },
		"list":      func(ctx context.Context) error { _, err := s.List(ctx, false); return err },
		"get_state": func(ctx context.Context) error { _, err := s.GetState(ctx, "k"); return err },
		"ping":      s.Ping,
		"open_count": func(context.Context) error {
			_, err := s.OpenCount()
			return err
		},
	}
	// All at once: each is bounded by the request timeout; the margin is for a busy machine,
	// not a speed claim.
	errs := make(chan error, len(calls))
	for name, call := range calls {
		go func() {
			err := call(ctx)
			if err == nil {
				err = errors.New("no error")
			}
			errs <- fmt.Errorf("%s: %w", name, err)
		}()
	}
	limit := time.After(10 * timeout)
	for range calls {
		select {
		case err := <-errs:
			t.Log(err)
			require.ErrorIs(t, err, incident.ErrUnavailable)
			require.ErrorContains(t, err, srv.Endpoint())
		case <-limit:
			t.Fatalf("calls still running %s after etcd died, with a %s request timeout", 10*timeout, timeout)
		}
	}

	srv.Start()
	deadline := time.Now().Add(30 * time.Second)
	for err := s.Ping(ctx); err != nil; err = s.Ping(ctx) {
		require.Truef(t, time.Now().Before(deadline), "store still unavailable 30s after etcd restarted: %v", err)
	}
	inc, err := s.Get(ctx, "inc-000001")
	require.NoError(t, err)
	require.Equal(t, incident.StepConfirming, inc.Step, "nothing written while etcd was down")
	require.Equal(t, 1, inc.Alerts[0].Deliveries)
	all, err := s.List(ctx, false)
	require.NoError(t, err)
	require.Len(t, all, 1, "the failed ingest created nothing")
	state, err := s.GetState(ctx, "k")
	require.NoError(t, err)
	require.Nil(t, state)

	res, err := s.Ingest(ctx, []incident.Delivery{storetest.Delivery("east", "aaa", "firing", t0)})
	require.NoError(t, err)
	require.Equal(t, incident.IngestResult{IncidentID: "inc-000001", Open: true}, res[0])
	_, err = s.Update(ctx, "inc-000001", func(inc *incident.Incident) error { inc.Step = incident.StepContaining; return nil })
	require.NoError(t, err)
}
