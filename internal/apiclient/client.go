// Package apiclient is a client of zmy-responder's /api/v1, as its OpenAPI description
// (GET /api/v1/openapi.yaml) defines it: zmyrtool is built on it and tests use it to drive a real
// daemon. Every call takes a context and honours its deadline; an answer that is not 2xx is an
// *Error carrying the server's own message. The answer types the receiver has no other type
// for (a page of summaries, the result of a decision) are defined here and the receiver answers
// with them.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// maxAnswer bounds what one answer may be read into memory (an incident with a large verdict
// is a few hundred KiB).
const maxAnswer = 64 << 20

// Options are a client's credentials and transport. The zero value talks without credentials
// over http.DefaultTransport.
type Options struct {
	// HTTPClient is the transport and its timeouts; nil: a client without a timeout of its own
	// (the context's deadline bounds each call).
	HTTPClient *http.Client
	// BearerToken, or BasicUser with BasicPassword: api.auth's credentials.
	BearerToken   string
	BasicUser     string
	BasicPassword string
	UserAgent     string
}

// Client talks to one daemon.
type Client struct {
	base *url.URL
	opts Options
}

// New returns a client of the daemon at baseURL (http://host:9095, with or without a path
// prefix behind a proxy).
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("responder URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("responder URL %q: want http://host:port or https://host:port", baseURL)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "zmy-responder-apiclient"
	}
	return &Client{base: u, opts: opts}, nil
}

// Error is an answer other than 2xx: its status and the server's message ({"error": "…"}), or
// the start of the body when it was not that.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// IsStatus reports whether err is an *Error with that status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// ListOptions select a page of incidents; zero values are the server's defaults.
type ListOptions struct {
	State   string // open, closed or all
	Cluster string
	Limit   int
	Cursor  string
}

// IncidentPage is GET /api/v1/incidents.
type IncidentPage struct {
	Incidents  []incident.Summary `json:"incidents"`
	NextCursor string             `json:"next_cursor,omitempty"`
}

// Decision is the body of a human decision: who and why, both required.
type Decision struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
}

// ActionResult answers an incident decision (approve, abort, …).
type ActionResult struct {
	ID      string           `json:"id"`
	Cluster string           `json:"cluster"`
	Step    incident.Step    `json:"step"`
	Outcome incident.Outcome `json:"outcome,omitempty"`
	Message string           `json:"message"`
}

// ClusterResult answers pause and unpause.
type ClusterResult struct {
	Cluster string `json:"cluster"`
	Paused  bool   `json:"paused"`
	Message string `json:"message"`
}

// Cluster is one entry of GET /api/v1/clusters.
type Cluster struct {
	Name            string           `json:"name"`
	Breaker         string           `json:"breaker"` // closed, half-open, open
	BreakerState    int              `json:"breaker_state"`
	Paused          *Pause           `json:"paused,omitempty"`
	DryRun          bool             `json:"dry_run"`
	RequireApproval bool             `json:"require_approval"`
	LastIncident    string           `json:"last_incident,omitempty"`
	LastOutcome     incident.Outcome `json:"last_outcome,omitempty"`
	LastRemediation *time.Time       `json:"last_remediation_at,omitempty"`
	OpenIncident    string           `json:"open_incident,omitempty"`
	CurrentStep     incident.Step    `json:"current_step,omitempty"`
}

// Pause is who set a cluster's kill switch, when and why.
type Pause struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Plan is GET /api/v1/clusters/{name}/plan: the verdict now and what the runbook would run.
type Plan struct {
	Cluster string            `json:"cluster"`
	Verdict *incident.Verdict `json:"verdict,omitempty"`
	Error   string            `json:"error,omitempty"`
	Guard   string            `json:"guard,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Steps   []string          `json:"steps"`
}

// Incidents returns one page of summaries, newest first.
func (c *Client) Incidents(ctx context.Context, o ListOptions) (*IncidentPage, error) {
	q := url.Values{}
	for k, v := range map[string]string{"state": o.State, "cluster": o.Cluster, "cursor": o.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return call[IncidentPage](ctx, c, http.MethodGet, "incidents", q, nil)
}

// Incident returns one incident with everything recorded about it.
func (c *Client) Incident(ctx context.Context, id string) (*incident.Incident, error) {
	return call[incident.Incident](ctx, c, http.MethodGet, "incidents/"+url.PathEscape(id), nil, nil)
}

// Decide posts the decision action ("approve", "abort", …) on the incident.
func (c *Client) Decide(ctx context.Context, id, action string, d Decision) (*ActionResult, error) {
	return call[ActionResult](ctx, c, http.MethodPost, "incidents/"+url.PathEscape(id)+"/"+url.PathEscape(action), nil, d)
}

// Clusters lists every configured cluster.
func (c *Client) Clusters(ctx context.Context) ([]Cluster, error) {
	var cs []Cluster
	err := c.do(ctx, http.MethodGet, "clusters", nil, nil, &cs)
	return cs, err
}

// SetPaused sets (pause) or clears (unpause) the cluster's kill switch.
func (c *Client) SetPaused(ctx context.Context, cluster string, pause bool, d Decision) (*ClusterResult, error) {
	action := "unpause"
	if pause {
		action = "pause"
	}
	return call[ClusterResult](ctx, c, http.MethodPost, "clusters/"+url.PathEscape(cluster)+"/"+action, nil, d)
}

// Plan runs the dry run of the cluster now.
func (c *Client) Plan(ctx context.Context, cluster string) (*Plan, error) {
	return call[Plan](ctx, c, http.MethodGet, "clusters/"+url.PathEscape(cluster)+"/plan", nil, nil)
}

// OpenAPI returns the daemon's OpenAPI description (YAML).
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	var raw []byte
	err := c.do(ctx, http.MethodGet, "openapi.yaml", nil, nil, &raw)
	return raw, err
}

// call is do decoding into a new T: the T, or nil and the error (never a half-filled T).
func call[T any](ctx context.Context, c *Client, method, path string, q url.Values, body any) (*T, error) {
	var v T
	if err := c.do(ctx, method, path, q, body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// do sends one request to /api/v1/<path> and decodes the JSON answer into out (a *[]byte
// receives the body as is).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u := c.base.JoinPath("api", "v1", path)
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, u.Path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u.Path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	switch {
	case c.opts.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+c.opts.BearerToken)
	case c.opts.BasicUser != "":
		req.SetBasicAuth(c.opts.BasicUser, c.opts.BasicPassword)
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it would name the method and URL a second time
		}
		u.RawQuery = ""
		return fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, u.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			msg = e.Error
		} else if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		return &Error{Status: resp.StatusCode, Message: msg}
	}
	if b, ok := out.(*[]byte); ok {
		*b = raw
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, u.Path, err)
	}
	return nil
}
