package receiver

import (
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/apiclient"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the console screenshot to docs/console.png")

var simBuild struct {
	once sync.Once
	err  error
}

// stackBinaries adds zmysim and zmysimctl beside the test's zmy-responder and returns the
// directory.
func stackBinaries(t *testing.T) string {
	t.Helper()
	responderBinary(t)
	simBuild.once.Do(func() { simBuild.err = testenv.Build(build.dir, "./cmd/zmysim", "./cmd/zmysimctl") })
	require.NoError(t, simBuild.err)
	return build.dir
}

// TestConsoleInBrowser drives Debian's headless chromium against a real daemon (with api.auth
// and a real Alertmanager) and simulator: the incident page of a partitioned cluster reaches
// awaiting_recovery without a reload; a page of another site cannot abort it; the approve form
// is refused without a reason (by the browser, and by the daemon when the browser's check is
// bypassed) and accepted with one; the page then reaches recovered by itself. The console shows
// no error all along. Screenshots go to the test's artifact directory.
func TestConsoleInBrowser(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pw, []byte("s3cret\n"), 0o600))
	st := testenv.StartStack(t, stackBinaries(t), testenv.StackOptions{Alertmanager: true, Config: func(cfg map[string]any) {
		cfg["api"].(map[string]any)["auth"] = map[string]any{"basic_auth": map[string]any{"username": "sre", "password_file": pw}}
		cfg["web"] = map[string]any{"grafana_url": "http://grafana.example.com"}
	}})
	api, err := apiclient.New(st.ResponderURL, apiclient.Options{BasicUser: "sre", BasicPassword: "s3cret"})
	require.NoError(t, err)
	auth := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("sre:s3cret"))}

	b := testenv.StartChromium(t)
	page := b.NewPage(t)
	page.SetHeaders(t, auth)
	page.Navigate(t, st.ResponderURL+"/")
	page.WaitFor(t, 30*time.Second, `document.querySelector("h1").textContent === "Open incidents"`)

	st.Partition(t, "n1,n2,n3/n4,n5", 8)
	st.Alert(t, "demo")
	var id string
	testenv.Eventually(t, 30*time.Second, "the incident opened", func() (bool, string) {
		p, err := api.Incidents(t.Context(), apiclient.ListOptions{State: "open"})
		if err != nil || len(p.Incidents) == 0 {
			return false, fmt.Sprint(err)
		}
		id = p.Incidents[0].ID
		return true, ""
	})
	// The index shows it by itself, then its page follows it to the gate without a reload.
	page.WaitFor(t, 30*time.Second, fmt.Sprintf(`document.querySelector('a[href="/incidents/%s"]') !== null`, id))
	incURL := st.ResponderURL + "/incidents/" + id
	page.Navigate(t, incURL)
	page.Eval(t, `window.notReloaded = true`, nil)
	// At the gate, once its first reading is in (until then the page says it is coming).
	page.WaitFor(t, 60*time.Second, `document.getElementById("step").textContent === "awaiting_recovery" && document.getElementById("gate") !== null`+
		` && document.getElementById("gate").textContent.includes("approval")`)
	page.WaitFor(t, 30*time.Second, `document.getElementById("form-approve") !== null`)
	var state struct {
		NotReloaded bool   `json:"notReloaded"`
		By          string `json:"by"`
		Gate        string `json:"gate"`
		Conditions  int    `json:"conditions"`
		Commands    int    `json:"commands"`
		Silence     string `json:"silence"`
		Grafana     string `json:"grafana"`
	}
	page.Eval(t, `({notReloaded: window.notReloaded === true,
		by: document.querySelector("#form-approve [name=by]").value,
		gate: document.getElementById("gate").textContent,
		conditions: document.querySelectorAll("section.condition.held").length,
		commands: document.querySelectorAll("table.commands tbody tr").length,
		silence: (document.querySelector('a[href*="/#/silences/"]') || {}).href || "",
		grafana: (document.querySelector('a[href^="http://grafana.example.com/d/zmy-responder/"]') || {}).href || ""})`, &state)
	require.True(t, state.NotReloaded, "the page reached the gate by live updates, not a reload")
	require.Equal(t, "sre", state.By, "by is prefilled with the authenticated user")
	require.Contains(t, state.Gate, "approval")
	require.Equal(t, 3, state.Conditions, "the three SOP conditions hold")
	require.GreaterOrEqual(t, state.Commands, 10, "suspend, state and snapshot on 5 nodes")
	require.Contains(t, state.Silence, st.AlertmanagerURL+"/#/silences/")
	require.Contains(t, state.Grafana, "var-cluster=demo")
	shots := t.ArtifactDir()
	page.Screenshot(t, filepath.Join(shots, "incident-awaiting-recovery.png"), false)
	page.Screenshot(t, filepath.Join(shots, "incident-awaiting-recovery-full.png"), true)
	if *updateScreenshot {
		page.Screenshot(t, filepath.Join("..", "docs", "console.png"), false)
	}

	// Another site's page posts an abort form to the console (its tab carries the credentials
	// too): refused, and the incident goes on.
	evil := crossSitePage(t, st.ResponderURL+"/incidents/"+id+"/abort")
	other := b.NewPage(t)
	other.SetHeaders(t, auth)
	other.Navigate(t, evil)
	other.Eval(t, `document.querySelector("button").click()`, nil)
	other.WaitFor(t, 30*time.Second, fmt.Sprintf(`location.href === %q && document.body.innerText.includes("cross-origin request refused")`, st.ResponderURL+"/incidents/"+id+"/abort"))
	inc, err := api.Incident(t.Context(), id)
	require.NoError(t, err)
	require.Nil(t, inc.Abort, "the cross-site abort did not reach the runbook")
	require.True(t, inc.Open())

	// The daemon refuses a reason-less approve even when the browser's own check is bypassed.
	other.Navigate(t, incURL)
	other.Eval(t, `(function(){ var f = document.getElementById("form-approve"); f.noValidate = true;
		f.querySelector("[name=reason]").value = ""; f.submit(); })()`, nil)
	other.WaitFor(t, 30*time.Second, `document.getElementById("flash") !== null && document.getElementById("flash").textContent.includes("a reason is required")`)

	// The browser refuses the approve form without a reason: nothing is sent.
	page.Front(t)
	var visible bool
	page.Eval(t, `document.visibilityState === "visible"`, &visible)
	require.True(t, visible)
	page.Eval(t, `document.querySelector("#form-approve [name=reason]").value = ""; document.querySelector("#form-approve button").click()`, nil)
	var valid, still bool
	page.Eval(t, `document.getElementById("form-approve").checkValidity()`, &valid)
	require.False(t, valid)
	page.Eval(t, `window.notReloaded === true`, &still)
	require.True(t, still, "the form was not submitted")
	inc, err = api.Incident(t.Context(), id)
	require.NoError(t, err)
	require.Empty(t, inc.Approvals)

	// With a reason it is accepted; the network heals and the page reaches recovered by itself.
	page.Eval(t, `document.querySelector("#form-approve [name=reason]").value = "network team confirmed the links are back";
		document.querySelector("#form-approve button").click()`, nil)
	page.WaitFor(t, 30*time.Second, `document.getElementById("flash") !== null && document.getElementById("flash").textContent.includes("Approve recovery: done")`)
	page.Eval(t, `window.notReloaded = true`, nil)
	st.Inject(t, "heal")
	page.WaitFor(t, 60*time.Second, `document.getElementById("outcome") !== null && document.getElementById("outcome").textContent === "recovered"`)
	page.Eval(t, `window.notReloaded === true`, &still)
	require.True(t, still, "recovered shown by live updates")
	page.Screenshot(t, filepath.Join(shots, "incident-recovered.png"), true)
	inc, err = api.Incident(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, incident.OutcomeRecovered, inc.Outcome, inc.Reason)
	require.Equal(t, "sre", inc.Approvals[0].By)
	st.RequireNoViolations(t)

	require.Empty(t, page.ConsoleErrors(), "the console's browser console")
	t.Logf("screenshots in %s", shots)
}

// crossSitePage serves, on http://localhost (another site than the daemon's 127.0.0.1), a
// page whose button posts a form to target, and returns its URL.
func crossSitePage(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><link rel="icon" href="data:,"><title>free prizes</title>
<form id="f" method="post" action="%s"><input name="by" value="evil page"><input name="reason" value="approved by evil page">
<button>Claim your prize</button></form>`, target)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return fmt.Sprintf("http://localhost:%d/", ln.Addr().(*net.TCPAddr).Port)
}
