package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The simulator-wide control API (--admin-address), used by `zmysim fault|nodes|audit|
// invariants` and by tests that drive a cluster running in another process.
const (
	pathNodes      = "/api/v1/nodes"
	pathAudit      = "/api/v1/audit"
	pathInvariants = "/api/v1/invariants"
	pathFaults     = "/api/v1/faults"
	pathEndpoints  = "/api/v1/endpoints"
)

type faultRequest struct {
	Args []string `json:"args"`
}

func (c *Cluster) serveAdmin(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen control API on %s: %w", addr, err)
	}
	c.adminAddr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET "+pathEndpoints, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Endpoints())
	})
	mux.HandleFunc("GET "+pathNodes, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Nodes())
	})
	mux.HandleFunc("GET "+pathInvariants, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Invariants())
	})
	mux.HandleFunc("GET "+pathAudit, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, e := range c.Audit() {
			_ = enc.Encode(e)
		}
	})
	mux.HandleFunc("POST "+pathFaults, func(w http.ResponseWriter, r *http.Request) {
		var req faultRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, errorResponse{Error: "decode fault: " + err.Error()})
			return
		}
		if err := c.Fault(req.Args); err != nil {
			writeJSON(w, http.StatusBadRequest, errorResponse{Error: err.Error()})
			return
		}
		c.log.Info("fault injected", "fault", strings.Join(req.Args, " "))
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	c.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srv := c.admin
	c.wg.Go(func() { _ = srv.Serve(ln) })
	return nil
}

// AdminClient talks to a simulator's control API.
type AdminClient struct {
	BaseURL string // http://host:port; a bare host:port is accepted
	HTTP    *http.Client
}

// NewAdminClient returns a client for the control API at addr with a 30s per-call timeout.
func NewAdminClient(addr string) *AdminClient {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &AdminClient{BaseURL: strings.TrimRight(addr, "/"), HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Fault injects a fault, e.g. Fault(ctx, "partition", "n1,n2,n3/n4,n5").
func (a *AdminClient) Fault(ctx context.Context, args ...string) error {
	body, _ := json.Marshal(faultRequest{Args: args})
	_, err := a.do(ctx, http.MethodPost, pathFaults, body)
	if err != nil {
		return fmt.Errorf("fault %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// Nodes returns every node's endpoints and state.
func (a *AdminClient) Nodes(ctx context.Context) ([]NodeInfo, error) {
	var out []NodeInfo
	return out, a.getJSON(ctx, pathNodes, &out)
}

// Endpoints returns the cluster's addresses, as `run` printed them.
func (a *AdminClient) Endpoints(ctx context.Context) (ReadyInfo, error) {
	var out ReadyInfo
	return out, a.getJSON(ctx, pathEndpoints, &out)
}

// Invariants returns the recorded violations.
func (a *AdminClient) Invariants(ctx context.Context) ([]Violation, error) {
	var out []Violation
	return out, a.getJSON(ctx, pathInvariants, &out)
}

// Audit returns the audit log.
func (a *AdminClient) Audit(ctx context.Context) ([]AuditEntry, error) {
	raw, err := a.do(ctx, http.MethodGet, pathAudit, nil)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	var out []AuditEntry
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("read audit log: decode line: %w", err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// AuditRaw returns the audit log as the control API serves it: JSON lines.
func (a *AdminClient) AuditRaw(ctx context.Context) ([]byte, error) {
	raw, err := a.do(ctx, http.MethodGet, pathAudit, nil)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return raw, nil
}

func (a *AdminClient) getJSON(ctx context.Context, path string, v any) error {
	raw, err := a.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("get %s: decode: %w", path, err)
	}
	return nil
}

func (a *AdminClient) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorResponse
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s", e.Error)
		}
		return nil, fmt.Errorf("control API answered %s", resp.Status)
	}
	return raw, nil
}
