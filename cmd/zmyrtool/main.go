// Command zmyrtool is the operator's CLI for a running zmy-responder, in amtool's style: list
// and show incidents, approve or abort them, pause clusters and run their dry-run plan.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"

	"github.com/zmyorg/zmy-responder/internal/apiclient"
	"github.com/zmyorg/zmy-responder/internal/zmyrtool"
)

const help = `View and act on zmy-responder's incidents and clusters.

Config file:
  $HOME/.config/zmyrtool/config.yml (or $XDG_CONFIG_HOME/zmyrtool/config.yml) sets flag
  defaults, one flag name per key, as amtool's does:

    responder.url: http://zmy-responder.example.com:9095
    auth.basic-username: alice
    auth.basic-password-file: /home/alice/.zmy-password
    output: extended

  Precedence: a flag, then ZMYRTOOL_URL for the URL, then the file, then the built-in default.

Exit status: 0 success, 1 the API answered an error (its message is printed) or could not be
reached, 2 bad usage.`

// Exit codes.
const (
	exitOK       = 0
	exitAPIError = 1
	exitUsage    = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run parses args, runs the command and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("zmyrtool", help).UsageWriter(stdout).ErrorWriter(stderr)
	app.Version(version.Print("zmyrtool"))
	app.HelpFlag.Short('h')
	app.UsageTemplate(kingpin.CompactUsageTemplate)

	var g globals
	app.Flag("responder.url", "zmy-responder to talk to.").Envar("ZMYRTOOL_URL").Default("http://127.0.0.1:9095").StringVar(&g.url)
	app.Flag("auth.bearer-token-file", "File holding the bearer token of api.auth.").PlaceHolder("<file>").StringVar(&g.tokenFile)
	app.Flag("auth.basic-username", "Basic auth user of api.auth (or --web.config.file).").StringVar(&g.user)
	app.Flag("auth.basic-password-file", "File holding the basic auth password.").PlaceHolder("<file>").StringVar(&g.passwordFile)
	app.Flag("output", "Output format: simple, extended or json.").Short('o').Default(string(zmyrtool.Simple)).EnumVar(&g.output, zmyrtool.Formats...)
	app.Flag("timeout", "Deadline of the whole command.").Default("30s").DurationVar(&g.timeout)

	var cmds []command
	incidents := app.Command("incidents", "Incidents: list, show, decide.").Alias("incident")
	{
		c := incidents.Command("list", "List incidents, newest first.").Default()
		var o apiclient.ListOptions
		var limit int
		c.Flag("state", "open, closed or all.").Default("all").EnumVar(&o.State, "open", "closed", "all")
		c.Flag("cluster", "Only this cluster's incidents.").StringVar(&o.Cluster)
		c.Flag("limit", "At most this many.").Default("20").IntVar(&limit)
		cmds = append(cmds, command{c.FullCommand(), func(ctx context.Context, t *zmyrtool.Tool) error {
			if limit < 1 {
				return usageError("--limit must be at least 1")
			}
			return t.ListIncidents(ctx, o, limit)
		}})
	}
	{
		c := incidents.Command("show", "Show an incident: verdict, gate, timeline, commands per node, silences.")
		id := c.Arg("id", "Incident ID, e.g. inc-000042.").Required().String()
		cmds = append(cmds, command{c.FullCommand(), func(ctx context.Context, t *zmyrtool.Tool) error { return t.ShowIncident(ctx, *id) }})
	}
	for _, a := range zmyrtool.IncidentActions {
		c := incidents.Command(a.Name, a.Help)
		id := c.Arg("id", "Incident ID.").Required().String()
		d := decisionFlags(c, a.ReasonOptional)
		cmds = append(cmds, command{c.FullCommand(), func(ctx context.Context, t *zmyrtool.Tool) error {
			return t.Decide(ctx, *id, a.Name, *d)
		}})
	}

	clusters := app.Command("clusters", "Clusters: list, pause, unpause, plan.").Alias("cluster")
	{
		c := clusters.Command("list", "List the configured clusters: kill switch, breaker, open incident.").Default()
		cmds = append(cmds, command{c.FullCommand(), func(ctx context.Context, t *zmyrtool.Tool) error { return t.ListClusters(ctx) }})
	}
	for _, pause := range []bool{true, false} {
		name, what := "pause", "Set the kill switch: no new remediation starts on the cluster."
		if !pause {
			name, what = "unpause", "Clear the kill switch."
		}
		c := clusters.Command(name, what)
		cluster := c.Arg("name", "Cluster name.").Required().String()
		d := decisionFlags(c, false)
		cmds = append(cmds, command{c.FullCommand(), func(ctx context.Context, t *zmyrtool.Tool) error {
			return t.SetPaused(ctx, *cluster, pause, *d)
		}})
	}
	{
		c := clusters.Command("plan", "Dry run: probe the cluster now, print the verdict and the steps the runbook would run.")
		cluster := c.Arg("name", "Cluster name.").Required().String()
		cmds = append(cmds, command{c.FullCommand(), func(ctx context.Context, t *zmyrtool.Tool) error { return t.Plan(ctx, *cluster) }})
	}

	if err := bindConfigFile(app, args); err != nil {
		fmt.Fprintf(stderr, "zmyrtool: %v\n", err)
		return exitUsage
	}
	selected, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "zmyrtool: error: %v, try --help\n", err)
		return exitUsage
	}
	tool, err := g.tool(stdout)
	if err != nil {
		fmt.Fprintf(stderr, "zmyrtool: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	for _, c := range cmds {
		if c.name != selected {
			continue
		}
		err := c.run(ctx, tool)
		var ue usageError
		switch {
		case err == nil:
			return exitOK
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "zmyrtool: error: %v, try --help\n", err)
			return exitUsage
		}
		var apiErr *apiclient.Error
		if errors.As(err, &apiErr) {
			// The server's own message says what is wrong; the status is for scripts.
			fmt.Fprintf(stderr, "zmyrtool: %s (HTTP %d)\n", apiErr.Message, apiErr.Status)
		} else {
			fmt.Fprintf(stderr, "zmyrtool: %v\n", err)
		}
		return exitAPIError
	}
	fmt.Fprintf(stderr, "zmyrtool: error: no command given, try --help\n")
	return exitUsage
}

type command struct {
	name string
	run  func(context.Context, *zmyrtool.Tool) error
}

type usageError string

func (e usageError) Error() string { return string(e) }

// decisionFlags adds --reason (required unless it is only a comment) and --by (default: the
// login name) to a decision.
func decisionFlags(c *kingpin.CmdClause, reasonOptional bool) *apiclient.Decision {
	var d apiclient.Decision
	reason := c.Flag("reason", "Why; recorded in the incident.")
	if !reasonOptional {
		reason = reason.Required()
	}
	reason.StringVar(&d.Reason)
	c.Flag("by", "Who decides; recorded with the reason.").Default(loginName()).StringVar(&d.By)
	return &d
}

func loginName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// globals are the flags every command shares.
type globals struct {
	url, tokenFile, user, passwordFile, output string
	timeout                                    time.Duration
}

// tool builds the API client from the global flags, reading secret files now.
func (g *globals) tool(out io.Writer) (*zmyrtool.Tool, error) {
	opts := apiclient.Options{UserAgent: "zmyrtool/" + version.Version}
	if g.tokenFile != "" && g.user != "" {
		return nil, errors.New("--auth.bearer-token-file and --auth.basic-username are exclusive")
	}
	if g.tokenFile != "" {
		tok, err := readSecret(g.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--auth.bearer-token-file: %w", err)
		}
		opts.BearerToken = tok
	}
	if g.user != "" {
		if g.passwordFile == "" {
			return nil, errors.New("--auth.basic-username needs --auth.basic-password-file")
		}
		pw, err := readSecret(g.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--auth.basic-password-file: %w", err)
		}
		opts.BasicUser, opts.BasicPassword = g.user, pw
	}
	c, err := apiclient.New(g.url, opts)
	if err != nil {
		return nil, fmt.Errorf("--responder.url: %w", err)
	}
	return &zmyrtool.Tool{Client: c, Out: out, Format: zmyrtool.Format(g.output)}, nil
}

// readSecret reads a secret file; a trailing newline is not part of the secret.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}
