package stack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// PostNotification posts body as application/json to url, as Alertmanager posts a notification, on
// client (a benchmark's kept-alive connections); an answer other than 200 is an error carrying its body.
func PostNotification(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answer %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}
