package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

// ctlHTTPTimeout is deliberately generous: a hung node makes `zmysim ctl` hang, as a real
// zmyctl would, and the driver must kill it at its own deadline.
const ctlHTTPTimeout = 5 * time.Minute

// ctlMaxAnswer bounds what ctl reads from a node.
const ctlMaxAnswer = 16 << 20

// RunCtl is `zmysim ctl --endpoint URL <args…>`: it sends the command to the node's admin
// API, prints what the node answered and returns zmyctl's exit code.
func RunCtl(ctx context.Context, endpoint string, args []string, stdout, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "error: "+format+"\n", a...)
		return code
	}
	if len(args) == 0 {
		return fail(zmy.ExitUsage, "no command given")
	}
	if endpoint == "" {
		return fail(zmy.ExitUsage, "--endpoint is required")
	}
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	body, err := json.Marshal(execRequest{Args: args})
	if err != nil {
		return fail(zmy.ExitError, "encode command: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(endpoint, "/")+"/admin/v1/exec", bytes.NewReader(body))
	if err != nil {
		return fail(zmy.ExitUsage, "bad endpoint %q: %v", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: ctlHTTPTimeout}
	resp, err := client.Do(req)
	if err != nil {
		return fail(zmy.ExitUnreachable, "node unreachable: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, ctlMaxAnswer))
	if err != nil {
		return fail(zmy.ExitUnreachable, "node unreachable: read answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorResponse
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return fail(zmy.ExitError, "%s", e.Error)
		}
		return fail(zmy.ExitError, "node answered %s", resp.Status)
	}
	var res execResponse
	if err := json.Unmarshal(raw, &res); err != nil {
		return fail(zmy.ExitError, "malformed answer from node: %v", err)
	}
	_, _ = io.WriteString(stdout, res.Stdout)
	_, _ = io.WriteString(stderr, res.Stderr)
	return res.Exit
}
