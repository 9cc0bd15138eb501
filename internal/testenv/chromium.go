package testenv

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Browser is Debian's headless chromium driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: JSON messages ending in NUL on file descriptors 3 and 4), so tests
// need no WebSocket client and no port.
type Browser struct {
	cmd    *exec.Cmd
	in     io.WriteCloser // chromium's fd 3
	exited chan struct{}
	stderr *syncBuffer

	mu       sync.Mutex
	nextID   int64
	pending  map[int64]chan cdpMessage
	sessions map[string]*Page
	closed   error // set when the pipe ends
}

type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *cdpError       `json:"error,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
}

type cdpError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// StartChromium runs chromium headless with a fresh profile, no network services of its own
// and no sandbox (tests run as root), until the test ends. It skips or fails as Binary does
// when chromium is not installed.
func StartChromium(t testing.TB) *Browser {
	t.Helper()
	bin := Binary(t, "chromium")
	toChrome, chromeIn, err := os.Pipe()
	require.NoError(t, err)
	chromeOut, fromChrome, err := os.Pipe()
	require.NoError(t, err)
	b := &Browser{in: chromeIn, exited: make(chan struct{}), stderr: &syncBuffer{},
		pending: map[int64]chan cdpMessage{}, sessions: map[string]*Page{}}
	b.cmd = exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--window-size=1280,900",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", "about:blank")
	b.cmd.ExtraFiles = []*os.File{toChrome, fromChrome} // fd 3: its input, fd 4: its output
	b.cmd.Stdout, b.cmd.Stderr = b.stderr, b.stderr
	require.NoError(t, b.cmd.Start())
	toChrome.Close()
	fromChrome.Close()
	go func() { _ = b.cmd.Wait(); close(b.exited) }()
	go b.read(chromeOut)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = b.call(ctx, "", "Browser.close", nil, nil)
		cancel()
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.exited
		}
		b.in.Close()
		if t.Failed() {
			// Without a system bus (containers, CI) chromium logs dbus errors by the dozen.
			var keep []string
			for _, l := range strings.Split(b.stderr.String(), "\n") {
				if !strings.Contains(l, "dbus") && strings.TrimSpace(l) != "" {
					keep = append(keep, l)
				}
			}
			t.Logf("chromium output:\n%s", strings.Join(keep, "\n"))
		}
	})
	return b
}

// read dispatches chromium's messages: answers to their callers, events to their page.
func (b *Browser) read(r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	var err error
	for {
		var raw []byte
		raw, err = br.ReadBytes(0)
		if err != nil {
			break
		}
		var m cdpMessage
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch := b.pending[m.ID]; ch != nil {
				delete(b.pending, m.ID)
				ch <- m
			}
		} else if p := b.sessions[m.SessionID]; p != nil {
			p.event(m)
		}
		b.mu.Unlock()
	}
	b.mu.Lock()
	b.closed = fmt.Errorf("chromium's DevTools pipe closed: %w", err)
	for id, ch := range b.pending {
		close(ch)
		delete(b.pending, id)
	}
	b.mu.Unlock()
}

// call sends one command (to the browser, or to a page's session) and decodes its result.
func (b *Browser) call(ctx context.Context, session, method string, params, result any) error {
	b.mu.Lock()
	if b.closed != nil {
		b.mu.Unlock()
		return b.closed
	}
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := b.in.Write(append(raw, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: %w", method, b.closed)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// Page is one tab.
type Page struct {
	b       *Browser
	session string

	// Guarded by b.mu (events arrive on the reader goroutine).
	problems []string // console errors, uncaught exceptions, failed loads
}

// NewPage opens a tab on about:blank with a 1280×900 viewport, recording console errors.
func (b *Browser) NewPage(t testing.TB) *Page {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var target struct {
		TargetID string `json:"targetId"`
	}
	require.NoError(t, b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target))
	var att struct {
		SessionID string `json:"sessionId"`
	}
	require.NoError(t, b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att))
	p := &Page{b: b, session: att.SessionID}
	b.mu.Lock()
	b.sessions[p.session] = p
	b.mu.Unlock()
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable", "Network.enable"} {
		require.NoError(t, p.call(ctx, m, nil, nil))
	}
	require.NoError(t, p.call(ctx, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil))
	return p
}

func (p *Page) call(ctx context.Context, method string, params, result any) error {
	return p.b.call(ctx, p.session, method, params, result)
}

// event records what a person would see as an error in the browser's console.
func (p *Page) event(m cdpMessage) {
	switch m.Method {
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(m.Params, &e) == nil && (e.Type == "error" || e.Type == "assert") {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, fmt.Sprint(a.Value)+a.Description)
			}
			p.problems = append(p.problems, "console."+e.Type+": "+strings.Join(parts, " "))
		}
	case "Runtime.exceptionThrown":
		var e struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		if json.Unmarshal(m.Params, &e) == nil {
			p.problems = append(p.problems, "uncaught: "+e.Details.Text+" "+e.Details.Exception.Description)
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Level, Text, URL string
			} `json:"entry"`
		}
		if json.Unmarshal(m.Params, &e) == nil && e.Entry.Level == "error" {
			p.problems = append(p.problems, "log: "+e.Entry.Text+" "+e.Entry.URL)
		}
	}
}

// ConsoleErrors is every error the page's console showed so far.
func (p *Page) ConsoleErrors() []string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	return append([]string(nil), p.problems...)
}

// Front makes the page the visible tab: a new tab hides the others, and pages may pause work
// while hidden (document.visibilityState).
func (p *Page) Front(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.call(ctx, "Page.bringToFront", nil, nil))
}

// SetHeaders adds headers to every request of the page (e.g. basic auth).
func (p *Page) SetHeaders(t testing.TB, h map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.call(ctx, "Network.setExtraHTTPHeaders", map[string]any{"headers": h}, nil))
}

// Navigate loads url and waits (up to 30s) until the document is complete.
func (p *Page) Navigate(t testing.TB, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	require.NoError(t, p.call(ctx, "Page.navigate", map[string]any{"url": url}, &nav))
	require.Empty(t, nav.ErrorText, "navigate to %s", url)
	p.WaitFor(t, 30*time.Second, fmt.Sprintf(`document.readyState === "complete" && location.href === %q`, url))
}

// Eval evaluates a JavaScript expression (awaiting a promise) and decodes its value into out.
func (p *Page) Eval(t testing.TB, expr string, out any) {
	t.Helper()
	require.NoError(t, p.eval(expr, out), "evaluate %s", expr)
}

func (p *Page) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return errors.New(e.Text + " " + e.Exception.Description)
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// WaitFor polls a JavaScript condition every 100ms until it is true, failing after within.
// Errors while a navigation replaces the document count as false.
func (p *Page) WaitFor(t testing.TB, within time.Duration, cond string) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for {
		var ok bool
		if last = p.eval("Boolean("+cond+")", &ok); last == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			var text string
			_ = p.eval(`location.href + "\n" + (document.body ? document.body.innerText.slice(0, 2000) : "")`, &text)
			t.Fatalf("browser: %s not true within %s (last error %v); page:\n%s", cond, within, last, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Screenshot writes a PNG of the page: the viewport, or the whole page when full.
func (p *Page) Screenshot(t testing.TB, path string, full bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	params := map[string]any{"format": "png"}
	if full {
		var m struct {
			Content struct {
				Width  float64 `json:"width"`
				Height float64 `json:"height"`
			} `json:"cssContentSize"`
		}
		require.NoError(t, p.call(ctx, "Page.getLayoutMetrics", nil, &m))
		params["captureBeyondViewport"] = true
		params["clip"] = map[string]any{"x": 0, "y": 0, "width": m.Content.Width, "height": m.Content.Height, "scale": 1}
	}
	var shot struct {
		Data string `json:"data"`
	}
	require.NoError(t, p.call(ctx, "Page.captureScreenshot", params, &shot))
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, png, 0o644))
}
