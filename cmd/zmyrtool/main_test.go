package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/apiclient"
	"github.com/zmyorg/zmy-responder/internal/incident"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// binDir holds the real bin/zmyrtool, the daemon and the simulator, built once.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, func(dir string) { binDir = dir },
		"./cmd/zmyrtool", "./cmd/zmysim", "./cmd/zmysimctl", "./cmd/zmy-responder"))
}

// cli runs bin/zmyrtool with a HOME of its own (so no developer's config file is read) and env.
type cli struct {
	home string
	env  []string
}

func newCLI(t *testing.T, env ...string) *cli {
	return &cli{home: t.TempDir(), env: env}
}

func (c *cli) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "zmyrtool"), args...)
	cmd.Env = append([]string{"HOME=" + c.home, "PATH=" + os.Getenv("PATH")}, c.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "zmyrtool %s: %v", strings.Join(args, " "), err)
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// ok runs a command that must succeed and returns its output.
func (c *cli) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errb := c.run(t, args...)
	require.Equal(t, 0, code, "zmyrtool %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errb)
	return out
}

func (c *cli) writeConfig(t *testing.T, yaml string) {
	t.Helper()
	dir := filepath.Join(c.home, ".config", "zmyrtool")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yml"), []byte(yaml), 0o600))
}

// TestCLIAgainstDaemon: an on-call day through bin/zmyrtool against a real daemon and simulator
// with api.auth: plan, partition, list, show, approve (refused without a reason), pause,
// unpause, recovery; credentials from flags and from the config file.
func TestCLIAgainstDaemon(t *testing.T) {
	dir := t.TempDir()
	pw, token := filepath.Join(dir, "pw"), filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(pw, []byte("s3cret\n"), 0o600))
	require.NoError(t, os.WriteFile(token, []byte("tok-123\n"), 0o600))
	st := testenv.StartStack(t, binDir, testenv.StackOptions{Alertmanager: true, Config: func(cfg map[string]any) {
		cfg["api"].(map[string]any)["auth"] = map[string]any{"bearer_token_file": token,
			"basic_auth": map[string]any{"username": "sre", "password_file": pw}}
	}})
	api, err := apiclient.New(st.ResponderURL, apiclient.Options{BearerToken: "tok-123"})
	require.NoError(t, err)

	// Credentials from the config file, the URL from the environment.
	c := newCLI(t, "ZMYRTOOL_URL="+st.ResponderURL)
	c.writeConfig(t, "auth.basic-username: sre\nauth.basic-password-file: "+pw+"\n")
	out := c.ok(t, "clusters")
	require.Regexp(t, `(?m)^NAME\s+KILL SWITCH\s+BREAKER`, out)
	require.Regexp(t, `(?m)^demo\s+running\s+closed\s+required\s+-\s+-`, out)
	out = c.ok(t, "clusters", "plan", "demo")
	require.Contains(t, out, "Dry run of cluster demo (nothing was changed).")
	require.Contains(t, out, "Verdict:   not_confirmed")
	require.Contains(t, out, "raft suspend --force")

	// No credentials: the server's error, exit 1.
	anon := newCLI(t)
	code, _, errb := anon.run(t, "--responder.url="+st.ResponderURL, "clusters", "plan", "demo")
	require.Equal(t, 1, code)
	require.Equal(t, "zmyrtool: missing or invalid credentials (HTTP 401)\n", errb)

	st.Partition(t, "n1,n2,n3/n4,n5", 8)
	st.Alert(t, "demo")
	id := waitStep(t, api, "", incident.StepAwaitingRecovery)

	out = c.ok(t, "incidents", "--state=open")
	require.Regexp(t, `(?m)^ID\s+CLUSTER\s+STEP\s+VERDICT\s+OUTCOME\s+OPENED$`, out)
	require.Regexp(t, `(?m)^`+id+`\s+demo\s+awaiting_recovery\s+confirmed\s+-\s+\S+ ago$`, out)
	out = c.ok(t, "incidents", "show", id)
	for _, want := range []string{
		id + "  ZMY_Quorum_Down on cluster demo",
		"Step:      awaiting_recovery",
		"Gate waits for: ", "approval",
		"Verdict:   confirmed: ",
		"[YES] control plane", "[YES] data plane", "[YES] network",
		"Timeline:", "Commands:", "  n1:", "exit 0",
		"Silences:", "created", st.AlertmanagerURL + "/#/silences/",
	} {
		require.Contains(t, out, want)
	}
	// The suspend as it was sent: an admin API call with the generated config's api driver
	// (POST …/admin/v1/raft/suspend), a command line with the zmyctl driver.
	require.Regexp(t, `/admin/v1/raft/suspend \{"force":true\}|raft suspend --force`, out)
	out = c.ok(t, "-o", "extended", "incidents", "show", id)
	require.Contains(t, out, "other evidence")
	require.Contains(t, out, "Alerts:")
	var inc incident.Incident
	require.NoError(t, json.Unmarshal([]byte(c.ok(t, "-o", "json", "incidents", "show", id)), &inc))
	require.Equal(t, id, inc.ID)

	// Decisions: a reason is required (usage, exit 2); an unknown incident is the API's 404.
	code, _, errb = c.run(t, "incidents", "approve", id)
	require.Equal(t, 2, code)
	require.Contains(t, errb, "required flag(s) '--reason' not provided")
	code, _, errb = c.run(t, "incidents", "approve", "inc-999999", "--reason=x")
	require.Equal(t, 1, code)
	require.Contains(t, errb, "incident not found (HTTP 404)")

	// Pause and unpause, with a bearer token from a flag this time.
	tc := newCLI(t)
	out = tc.ok(t, "--responder.url="+st.ResponderURL, "--auth.bearer-token-file="+token, "clusters", "pause", "demo", "--reason=maintenance window", "--by=bob")
	require.Equal(t, "demo: paused (no new remediation starts)\npaused by bob: maintenance window\n", out)
	out = c.ok(t, "-o", "extended", "clusters", "list")
	require.Contains(t, out, "paused by bob at ")
	require.Contains(t, out, id+" at awaiting_recovery")
	out = c.ok(t, "clusters", "unpause", "demo", "--reason=done")
	require.Contains(t, out, "unpaused by root: done") // --by defaults to the login name

	// An acknowledgement: recorded, the reason is only a comment, and it opens no gate.
	out = c.ok(t, "incidents", "ack", id, "--by=carol")
	require.Contains(t, out, "ack "+id+": demo is at awaiting_recovery")
	require.NoError(t, json.Unmarshal([]byte(c.ok(t, "-o", "json", "incidents", "show", id)), &inc))
	require.Len(t, inc.Acks, 1)
	require.Equal(t, "carol", inc.Acks[0].By)
	require.Equal(t, incident.StepAwaitingRecovery, inc.Step, "an acknowledgement approves nothing")
	require.Empty(t, inc.Approvals)

	st.Inject(t, "heal")
	out = c.ok(t, "incidents", "approve", id, "--reason=network team confirmed", "--by=alice")
	require.Equal(t, "approve "+id+": demo is at awaiting_recovery\napproved by alice: network team confirmed\n", out)
	waitStep(t, api, id, incident.StepClosed)
	out = c.ok(t, "-o", "extended", "incidents", "list", "--cluster=demo", "--state=closed")
	require.Regexp(t, `(?m)^`+id+`\s+demo\s+ZMY_Quorum_Down\s+closed\s+confirmed\s+recovered\s`, out)
	out = c.ok(t, "incidents", "show", id)
	require.Contains(t, out, "Approved:  by alice")
	require.Contains(t, out, "Recovery:  majority n1,n2,n3")
	var list []incident.Summary
	require.NoError(t, json.Unmarshal([]byte(c.ok(t, "-o", "json", "incidents", "list", "--limit=1")), &list))
	require.Len(t, list, 1)
	code, _, errb = c.run(t, "incidents", "abort", id, "--reason=too late")
	require.Equal(t, 1, code)
	require.Contains(t, errb, "(HTTP 409)")
	st.RequireNoViolations(t)
}

// waitStep waits up to 60s for the incident (the newest open one when id is "") to reach step.
func waitStep(t *testing.T, api *apiclient.Client, id string, step incident.Step) string {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, "incident at "+string(step), func() (bool, string) {
		p, err := api.Incidents(t.Context(), apiclient.ListOptions{Cluster: "demo", Limit: 5})
		if err != nil {
			return false, err.Error()
		}
		for _, s := range p.Incidents {
			if id == "" && s.Open() {
				id = s.ID
			}
			if s.ID == id {
				if !s.Open() && step != incident.StepClosed {
					t.Fatalf("%s closed %s: %s", s.ID, s.Outcome, s.Reason)
				}
				return s.Step == step, string(s.Step)
			}
		}
		return false, "no incident"
	})
	return id
}

// TestCLIUsage: usage errors exit 2 with a hint, before anything is sent; so does a broken
// config file.
func TestCLIUsage(t *testing.T) {
	c := newCLI(t, "ZMYRTOOL_URL=http://127.0.0.1:1")
	for _, args := range [][]string{
		{"frobnicate"},
		{"incidents", "show"},
		{"--output=xml", "incidents"},
		{"clusters", "pause", "demo"},
		{"incidents", "list", "--limit=0"},
		{"incidents", "list", "--state=sideways"},
		{"--auth.basic-username=sre", "clusters"},
		{"--responder.url=localhost:9095", "clusters"},
	} {
		code, _, errb := c.run(t, args...)
		require.Equal(t, 2, code, "%v: %s", args, errb)
		require.True(t, strings.HasPrefix(errb, "zmyrtool: "), "%v: %s", args, errb)
	}
	code, _, errb := c.run(t, "clusters")
	require.Equal(t, 1, code, "an unreachable daemon is not a usage error")
	require.Contains(t, errb, "connection refused")
	code, out, _ := c.run(t, "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "$HOME/.config/zmyrtool/config.yml")

	c.writeConfig(t, "responder.url: [not, a, string]\n")
	code, _, errb = c.run(t, "clusters")
	require.Equal(t, 2, code)
	require.Contains(t, errb, "config file")
	c.writeConfig(t, "responder.ulr: http://127.0.0.1:9095\n")
	code, _, errb = c.run(t, "clusters")
	require.Equal(t, 2, code)
	require.Contains(t, errb, `unknown key "responder.ulr"`)

	// The file's URL is used unless ZMYRTOOL_URL or the flag says otherwise.
	fromFile := newCLI(t)
	fromFile.writeConfig(t, "responder.url: http://127.0.0.1:2\nby: carol\n")
	_, _, errb = fromFile.run(t, "clusters")
	require.Contains(t, errb, "127.0.0.1:2")
	fromEnv := newCLI(t, "ZMYRTOOL_URL=http://127.0.0.1:3")
	fromEnv.home = fromFile.home
	_, _, errb = fromEnv.run(t, "clusters")
	require.Contains(t, errb, "127.0.0.1:3")
	_, _, errb = fromEnv.run(t, "--responder.url=http://127.0.0.1:4", "clusters")
	require.Contains(t, errb, "127.0.0.1:4")
}
