package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zmyorg/zmy-responder/internal/simctl"
	"github.com/zmyorg/zmy-responder/internal/zmy"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// nodeServer owns one node's ports: HTTP (/metrics, /healthz, /admin/…), the peer TCP port
// and gRPC health. Ports are picked once and reused when a killed node restarts.
type nodeServer struct {
	c   *Cluster
	idx int
	id  string

	handler http.Handler

	mu       sync.Mutex // guards the listeners below and etcdStop
	httpAddr string
	peerAddr string
	grpcAddr string
	httpSrv  *http.Server
	peerLn   net.Listener
	grpcSrv  *grpc.Server
	etcdStop context.CancelFunc
}

func newNodeServer(c *Cluster, i int) *nodeServer {
	s := &nodeServer{c: c, idx: i, id: c.m.nodes[i].id}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newNodeCollector(c, i))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("POST /admin/v1/exec", s.handleExec)
	mux.HandleFunc("GET "+zmy.APIPrefix+"{command...}", s.handleAPI)
	mux.HandleFunc("POST "+zmy.APIPrefix+"{command...}", s.handleAPI)
	s.handler = mux
	return s
}

// bindFresh binds the three ports on free ports without serving yet, so that every node's
// addresses are known (and immutable) before any request can arrive.
func (s *nodeServer) bindFresh() (lns [3]net.Listener, err error) {
	for k := range lns {
		if lns[k], err = s.listenStable(s.c.opts.Host); err != nil {
			for _, ln := range lns[:k] {
				_ = ln.Close()
			}
			return lns, fmt.Errorf("listen on %s: %w", s.c.opts.Host, err)
		}
	}
	s.httpAddr, s.peerAddr, s.grpcAddr = lns[0].Addr().String(), lns[1].Addr().String(), lns[2].Addr().String()
	return lns, nil
}

// serveFresh starts serving on the listeners bindFresh returned.
func (s *nodeServer) serveFresh(lns [3]net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serveHTTP(lns[0])
	s.servePeer(lns[1])
	s.serveGRPC(lns[2])
}

// listenStable binds a free port that nobody else takes while the node has it closed: a
// partition closes the peer port, a kill every port, and they reopen on the same numbers.
//   - The kernel picks the local ports of outgoing connections (the responder's kept-alive ones
//     included) from its ephemeral range, so the port is taken below that range; port 0 would
//     be in it.
//   - Other simulators (tests run many at once, in several processes) pick ports the same way:
//     each port is claimed with a lock file (claimPort) for as long as the cluster lives, and a
//     port another simulator claimed is not taken even while it is closed.
//
// Where the range leaves no room below it, port 0.
func (s *nodeServer) listenStable(host string) (net.Listener, error) {
	if lo := ephemeralLow(); lo > stableLow+1000 {
		for range 200 {
			port := stableLow + rand.N(lo-stableLow)
			claim, ok := claimPort(port)
			if !ok {
				continue
			}
			ln, err := net.Listen("tcp", hostPort(host, port))
			if err != nil {
				claim.Close()
				continue
			}
			s.c.claimsMu.Lock()
			s.c.claims = append(s.c.claims, claim)
			s.c.claimsMu.Unlock()
			return ln, nil
		}
	}
	return net.Listen("tcp", hostPort(host, 0))
}

// claimPort takes an exclusive advisory lock on a file naming port, shared by every simulator
// on the machine; the kernel releases it when the file is closed or the process dies.
func claimPort(port int) (*os.File, bool) {
	dir := filepath.Join(os.TempDir(), "zmysim-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, true // no claims possible here: take the port unclaimed, as before
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, false
	}
	return f, true
}

// stableLow keeps listenStable above the ports services are usually configured on.
const stableLow = 20000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux); 0 when unknown.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return lo
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

func (s *nodeServer) serveHTTP(ln net.Listener) {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.httpSrv = srv
	s.c.wg.Go(func() { _ = srv.Serve(ln) })
}

// servePeer accepts TCP on the peer port: a probe (the seed's `telnet <peer> 7070`) connects,
// reads a banner and is closed.
func (s *nodeServer) servePeer(ln net.Listener) {
	s.peerLn = ln
	banner := []byte("ZMY-PEER " + s.id + "\n")
	s.c.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = conn.Write(banner)
			_ = conn.Close()
		}
	})
}

func (s *nodeServer) serveGRPC(ln net.Listener) {
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("zmy", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	s.grpcSrv = srv
	s.c.wg.Go(func() { _ = srv.Serve(ln) })
}

// reconcile opens or closes ports to match the wanted state.
func (s *nodeServer) reconcile(up, peer bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if up && s.httpSrv == nil {
		hl, err1 := listen(s.httpAddr)
		gl, err2 := listen(s.grpcAddr)
		if err := errors.Join(err1, err2); err != nil {
			for _, ln := range []net.Listener{hl, gl} {
				if ln != nil {
					_ = ln.Close()
				}
			}
			errs = append(errs, err)
		} else {
			s.serveHTTP(hl)
			s.serveGRPC(gl)
			s.startEtcdLocked()
		}
	}
	if !up && s.httpSrv != nil {
		// Close, not Shutdown: a killed process drops its connections, hung requests included.
		_ = s.httpSrv.Close()
		s.httpSrv = nil
		s.grpcSrv.Stop()
		s.grpcSrv = nil
		s.stopEtcdLocked()
	}
	if peer && s.peerLn == nil {
		if ln, err := listen(s.peerAddr); err != nil {
			errs = append(errs, err)
		} else {
			s.servePeer(ln)
		}
	}
	if !peer && s.peerLn != nil {
		_ = s.peerLn.Close()
		s.peerLn = nil
	}
	return errors.Join(errs...)
}

// stop closes everything for good.
func (s *nodeServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpSrv != nil {
		_ = s.httpSrv.Close()
		s.httpSrv = nil
	}
	if s.grpcSrv != nil {
		s.grpcSrv.Stop()
		s.grpcSrv = nil
	}
	if s.peerLn != nil {
		_ = s.peerLn.Close()
		s.peerLn = nil
	}
	s.stopEtcdLocked()
}

func (s *nodeServer) endpoints() NodeEndpoints {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := "http://" + s.httpAddr
	return NodeEndpoints{
		ID:         s.id,
		Host:       s.c.opts.Host,
		HTTPAddr:   s.httpAddr,
		Admin:      base,
		MetricsURL: base + "/metrics",
		HealthURL:  base + "/healthz",
		PeerAddr:   s.peerAddr,
		GRPCAddr:   s.grpcAddr,
	}
}

// NodeEndpoints are one node's addresses, as the responder's config names them.
type NodeEndpoints struct {
	ID         string `json:"id"`
	Host       string `json:"host"`
	HTTPAddr   string `json:"http_addr"` // host:port of /metrics, /healthz and the admin API
	Admin      string `json:"admin"`     // base URL handed to `zmysim ctl --endpoint`
	MetricsURL string `json:"metrics_url"`
	HealthURL  string `json:"health_url"`
	PeerAddr   string `json:"peer_addr"`
	GRPCAddr   string `json:"grpc_addr"`
}

// execRequest and execResponse are the node admin API that `zmysim ctl` talks to: the
// command words go to the node, which answers with what zmyctl prints and its exit code.
// The admin API's wire types are the lean ctl client's (internal/simctl).
type (
	execRequest   = simctl.Request
	execResponse  = simctl.Response
	errorResponse = simctl.ErrorResponse
)

// handleExec serves one zmyctl command, applying the node's injected ctl fault first.
func (s *nodeServer) handleExec(w http.ResponseWriter, r *http.Request) {
	var req execRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "decode command: " + err.Error()})
		return
	}
	switch res, how := s.serve(r, req, ""); how {
	case injectedFailure:
		writeJSON(w, http.StatusInternalServerError, errorResponse{Error: "injected failure"})
	case answered:
		writeJSON(w, http.StatusOK, res)
	}
}

// handleAPI serves one command of the per-command admin API (zmy.APIPrefix): the request is
// turned into the zmyctl command it stands for and served as handleExec serves it (same faults,
// in-flight listing, audit), then answered as the API answers: 200 with the JSON zmyctl would
// print, or an error code that maps onto zmyctl's exit code.
func (s *nodeServer) handleAPI(w http.ResponseWriter, r *http.Request) {
	ar := zmy.APIRequest{Method: r.Method, Path: r.URL.EscapedPath(), Fields: map[string]string{}}
	var err error
	if r.Method == http.MethodGet {
		for k, v := range r.URL.Query() {
			ar.Fields[k] = v[len(v)-1]
		}
	} else {
		err = decodeFields(http.MaxBytesReader(w, r.Body, 64<<10), ar.Fields)
	}
	var args []string
	if err == nil {
		args, err = ar.Args()
	}
	if err != nil {
		writeAPIError(w, zmy.ExitUsage, err.Error())
		return
	}
	// The API answers JSON only; "-o json" makes the command render it.
	req := execRequest{Args: append(args, "-o", "json"), Actor: r.Header.Get(zmy.ActorHeader)}
	res, how := s.serve(r, req, r.Method+" "+r.URL.Path)
	switch {
	case how == injectedFailure:
		writeAPIError(w, zmy.ExitError, "injected failure")
	case how == noAnswer:
	case res.Exit != zmy.ExitOK:
		writeAPIError(w, res.Exit, strings.TrimPrefix(strings.TrimSpace(res.Stderr), "error: "))
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, res.Stdout)
	}
}

// decodeFields reads a POST body, a JSON object of flags: true for a boolean flag, a string for
// a value. An empty body is no flags.
func decodeFields(r io.Reader, into map[string]string) error {
	var raw map[string]any
	if err := json.NewDecoder(r).Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("decode request: %w", err)
	}
	for k, v := range raw {
		switch v := v.(type) {
		case bool:
			into[k] = strconv.FormatBool(v)
		case string:
			into[k] = v
		default:
			return fmt.Errorf("field %q: want true, false or a string", k)
		}
	}
	return nil
}

func writeAPIError(w http.ResponseWriter, exit int, msg string) {
	e := zmy.APIErrorForExit(exit)
	writeJSON(w, e.Status, zmy.APIError{Error: zmy.APIErrorDetail{Code: e.Code, Message: msg}})
}

// How serve ended.
type served int

const (
	answered        served = iota // the command ran; its response says how
	injectedFailure               // ctl fail: the node failed the command without running it
	noAnswer                      // injected hang, or the caller went away during injected slowness
)

// serve runs one command on this node through the injected faults and records it in the audit
// log (api names the admin API call, "" for /admin/v1/exec). A caller that goes away during
// injected slowness drops the command unapplied.
func (s *nodeServer) serve(r *http.Request, req execRequest, api string) (execResponse, served) {
	start := time.Now()
	words := commandWords(req.Args)
	s.c.mu.Lock()
	n := s.c.m.nodes[s.idx]
	mode, slow := n.ctlMode, n.slow
	if n.slowCmd != "" && n.slowCmd != words {
		slow = 0
	}
	n.inFlight = append(n.inFlight, words)
	s.c.mu.Unlock()
	defer func() {
		s.c.mu.Lock()
		if k := slices.Index(n.inFlight, words); k >= 0 {
			n.inFlight = slices.Delete(n.inFlight, k, k+1)
		}
		s.c.mu.Unlock()
	}()

	if slow > 0 {
		// A node that has not applied a command yet drops it when its caller goes away, as an
		// admin API that checks its request's context would.
		t := time.NewTimer(slow)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.c.record(s.id, req, api, start, ExitNoAnswer, "caller gave up during injected slowness")
			return execResponse{}, noAnswer
		}
	}
	switch mode {
	case ctlHang:
		// Answer nothing until the caller (or the node's death) ends the request.
		<-r.Context().Done()
		s.c.record(s.id, req, api, start, ExitNoAnswer, "injected hang: no answer")
		return execResponse{}, noAnswer
	case ctlFail:
		s.c.record(s.id, req, api, start, zmy.ExitError, "error: injected failure")
		return execResponse{}, injectedFailure
	}
	res := s.c.exec(s.idx, req.Args, req.Actor)
	s.c.record(s.id, req, api, start, res.Exit, res.Stdout+res.Stderr)
	return res, answered
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
