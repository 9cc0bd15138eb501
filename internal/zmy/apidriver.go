package zmy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// APIDriver sends the node commands of one cluster to each node's admin HTTP API (api.go) over
// kept-alive connections: no process per command. Results, errors, evidence and metrics are
// the zmyctl Driver's: Result.Args is the request (method, URL, body), Result.Stdout the answer,
// Result.Exit the zmyctl exit the answer stands for. It is safe for concurrent use.
type APIDriver struct {
	commands
	cluster string
	client  *http.Client
	timeout time.Duration
}

// NewAPIDriver checks every node's admin URL and builds (or reuses) the cluster's HTTP client
// from its admin_api.http_config: TLS, credentials and proxy as prometheus/common reads them.
func NewAPIDriver(cluster config.ClusterConfig, opts DriverOptions) (*APIDriver, error) {
	for _, n := range cluster.Nodes {
		u, err := url.Parse(n.Admin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("cluster %q: node %s: admin %q is not an http(s) URL", cluster.Name, n.ID, n.Admin)
		}
	}
	client, err := apiClients.get(cluster.Name, cluster.AdminAPI.HTTPClientConfig)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: admin API HTTP client: %w", cluster.Name, err)
	}
	d := &APIDriver{cluster: cluster.Name, client: client, timeout: opts.timeout(cluster)}
	// The API answers JSON whatever is asked; TextOutput has nothing to switch.
	if d.commands, err = newCommands(d, cluster.Name, opts, false); err != nil {
		return nil, err
	}
	return d, nil
}

// exec sends one command as its admin API request and reads the answer, at most maxOutput
// bytes of it. On the deadline the request is abandoned and its connection closed, which tells
// the node its caller went away.
func (d *APIDriver) exec(ctx context.Context, node config.NodeConfig, command string, args []string) (*Result, error) {
	fail := func(kind, err error) *CommandError {
		return &CommandError{Command: command, Node: node.ID, Kind: kind, Err: err}
	}
	ar := NewAPIRequest(args)
	target := strings.TrimRight(node.Admin, "/") + ar.Path
	var body []byte
	if ar.Method == http.MethodGet {
		if q := ar.query(); q != "" {
			target += "?" + q
		}
	} else {
		body = ar.body()
	}
	res := &Result{Node: node.ID, Command: command, Args: []string{ar.Method, target}, Exit: -1, Started: time.Now()}
	if body != nil {
		res.Args = append(res.Args, string(body))
	}
	if err := ctx.Err(); err != nil {
		return res, fail(ctxKind(err), fmt.Errorf("before sending: %w", err))
	}

	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, ar.Method, target, bytes.NewReader(body))
	if err != nil {
		return res, fail(nil, fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if actor := ActorFrom(ctx); actor != "" {
		req.Header.Set(ActorHeader, actor)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		res.Duration = time.Since(res.Started)
		return res, fail(sendError(ctx, res.Duration, err))
	}
	answer, truncated, err := readCapped(resp.Body, d.maxOutput)
	_ = resp.Body.Close()
	res.Duration = time.Since(res.Started)
	if err != nil {
		if ctx.Err() != nil {
			return res, fail(sendError(ctx, res.Duration, err))
		}
		return res, fail(nil, fmt.Errorf("read answer: %w", err))
	}

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		res.Exit, res.Stdout, res.StdoutTruncated = ExitOK, string(answer), truncated
		return res, nil
	}
	res.Stderr, res.StderrTruncated = string(answer), truncated
	res.Exit = ExitError
	msg := strings.TrimSpace(string(answer))
	var ae APIError
	if json.Unmarshal(answer, &ae) == nil && ae.Error.Code != "" {
		res.Exit, msg = exitForAPICode(ae.Error.Code), ae.Error.Message
	}
	ee := &ExitStatusError{Code: res.Exit, Stderr: msg, HTTPStatus: resp.StatusCode}
	return res, &CommandError{Command: command, Node: node.ID, Kind: sentinelForExit(res.Exit), Exit: ee}
}

// sendError classifies a request that got no answer. Only a failed dial is ErrUnreachable: the
// command certainly did not reach the node (remediation tries another node for recover only
// then). Anything later may have been applied.
func sendError(ctx context.Context, after time.Duration, err error) (kind, cause error) {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxKind(ctxErr), fmt.Errorf("no answer after %s: %w", after.Round(time.Millisecond), ctxErr)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return ErrUnreachable, err
	}
	return nil, err
}

// readCapped reads r to the end, keeping the first max bytes.
func readCapped(r io.Reader, max int64) ([]byte, bool, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if int64(len(b)) > max {
		return b[:max], true, err
	}
	return b, false, err
}

// query is a GET request's fields as a query string, in name order.
func (r APIRequest) query() string {
	q := url.Values{}
	for k, v := range r.Fields {
		q.Set(k, v)
	}
	return q.Encode()
}

// body is a POST request's fields as a JSON object: a boolean flag is true, a value flag a string.
func (r APIRequest) body() []byte {
	fields := make(map[string]any, len(r.Fields))
	for k, v := range r.Fields {
		if v == "true" && !slices.Contains(valueFlags, "--"+k) {
			fields[k] = true
		} else {
			fields[k] = v
		}
	}
	b, _ := json.Marshal(fields) // strings and booleans always encode; keys come out sorted
	return b
}

// apiClients keeps one HTTP client per cluster and client configuration: detection and
// remediation, and every reload that leaves the cluster's admin_api as it was, share one pool of
// kept-alive connections instead of each opening its own to every node.
var apiClients = clientCache{clients: map[string]cachedClient{}}

type clientCache struct {
	mu      sync.Mutex
	clients map[string]cachedClient
}

type cachedClient struct {
	cfg    commoncfg.HTTPClientConfig
	client *http.Client
}

func (c *clientCache) get(cluster string, cfg commoncfg.HTTPClientConfig) (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.clients[cluster]
	if ok && reflect.DeepEqual(old.cfg, cfg) {
		return old.client, nil
	}
	client, err := commoncfg.NewClientFromConfig(cfg, "zmy_admin_api", commoncfg.WithUserAgent("zmy-responder"))
	if err != nil {
		return nil, err
	}
	if ok {
		// Calls still running on the old client finish; its idle connections go now.
		old.client.CloseIdleConnections()
	}
	c.clients[cluster] = cachedClient{cfg: cfg, client: client}
	return client, nil
}
