package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// maxHealthBody caps what is read of a /healthz answer.
const maxHealthBody = 4 << 10

// ProbeHealthz GETs the node's /healthz and wants 200 with {"status":"ok"}.
func ProbeHealthz(ctx context.Context, t Target) Result {
	url := t.Node.HealthURL
	if url == "" {
		return Result{Status: StatusError, Reason: "node has no health_url configured"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Result{Status: StatusError, Err: err, Reason: fmt.Sprintf("build request for %s: %v", url, err)}
	}
	client := t.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{Status: StatusError, Err: err, Reason: fmt.Sprintf("GET %s: %v", url, err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	if err != nil {
		return Result{Status: StatusError, Err: err, Reason: fmt.Sprintf("read %s: %v", url, err)}
	}
	r := Result{Raw: string(body), Value: resp.Status}
	var doc struct {
		Status string `json:"status"`
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		r.Status, r.Reason = StatusFail, fmt.Sprintf("GET %s: HTTP %s", url, resp.Status)
	case json.Unmarshal(body, &doc) != nil:
		r.Status, r.Reason = StatusFail, fmt.Sprintf("GET %s: body is not JSON", url)
	case doc.Status != "ok":
		r.Status, r.Reason = StatusFail, fmt.Sprintf("GET %s: status %q, want \"ok\"", url, doc.Status)
	default:
		r.Status = StatusOK
	}
	return r
}
