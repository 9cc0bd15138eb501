package testenv

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestChromium: the DevTools client loads a page, evaluates, waits, sees console errors and
// uncaught exceptions, sends extra headers and takes a screenshot.
func TestChromium(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/favicon.ico":
			http.NotFound(w, r)
		case "/quiet":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`<!DOCTYPE html><link rel="icon" href="data:,"><title>quiet</title><p id="who">` + r.Header.Get("X-Test") + `</p>`))
		default:
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`<!DOCTYPE html><link rel="icon" href="data:,"><title>t</title><p id="p">start</p>
<script>console.error("boom"); setTimeout(function(){ document.getElementById("p").textContent = "later"; throw new Error("kaput"); }, 300);</script>`))
		}
	}))
	defer srv.Close()
	b := StartChromium(t)
	p := b.NewPage(t)
	p.SetHeaders(t, map[string]string{"X-Test": "hello"})
	p.Navigate(t, srv.URL+"/quiet")
	var who string
	p.Eval(t, `document.getElementById("who").textContent`, &who)
	require.Equal(t, "hello", who)
	require.Empty(t, p.ConsoleErrors())

	p.Navigate(t, srv.URL+"/")
	p.WaitFor(t, 10*time.Second, `document.getElementById("p").textContent === "later"`)
	deadline := time.Now().Add(5 * time.Second)
	for len(p.ConsoleErrors()) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	errs := p.ConsoleErrors()
	require.Len(t, errs, 2, "%q", errs)
	require.Contains(t, errs[0], "boom")
	require.Contains(t, errs[1], "kaput")

	png := filepath.Join(t.TempDir(), "shot.png")
	p.Screenshot(t, png, true)
	raw, err := os.ReadFile(png)
	require.NoError(t, err)
	require.Equal(t, "\x89PNG", string(raw[:4]))
}
