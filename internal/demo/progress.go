package demo

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// progress turns successive readings of one incident into narration lines: each step's header
// where the step begins, then what was done in it. The responder journals a step's zmyctl
// commands at the latest with the move to the next step, so within one reading the new timeline
// events and commands, merged by time, come out in the order they happened: a command started
// after its step's header and before the next one's.
type progress struct {
	verbose bool // every command line in full, instead of one summary per command and step
	events  int  // timeline events already narrated
	cmds    int  // commands already narrated
}

// item is a timeline event or a command, to merge them by time.
type item struct {
	at  time.Time
	ev  *incident.Event
	cmd *incident.Command
}

// next returns the lines for what inc holds beyond the previous reading.
func (p *progress) next(inc *incident.Incident) []string {
	var items []item
	for i := range inc.Timeline[min(p.events, len(inc.Timeline)):] {
		ev := &inc.Timeline[p.events+i]
		items = append(items, item{at: ev.At, ev: ev})
	}
	for i := range inc.Commands[min(p.cmds, len(inc.Commands)):] {
		c := &inc.Commands[p.cmds+i]
		items = append(items, item{at: c.Started, cmd: c})
	}
	p.events, p.cmds = len(inc.Timeline), len(inc.Commands)
	slices.SortStableFunc(items, func(a, b item) int { return a.at.Compare(b.at) })

	var out []string
	for i := 0; i < len(items); {
		if ev := items[i].ev; ev != nil {
			out = append(out, eventLine(ev))
			i++
			continue
		}
		// A run of the same command in the same step: one summary, or every line with -v.
		j := i + 1
		for j < len(items) && items[j].cmd != nil && items[j].cmd.Step == items[i].cmd.Step &&
			commandLine(items[j].cmd.Args) == commandLine(items[i].cmd.Args) {
			j++
		}
		run := make([]*incident.Command, 0, j-i)
		for _, it := range items[i:j] {
			run = append(run, it.cmd)
		}
		if p.verbose {
			for _, c := range run {
				out = append(out, fmt.Sprintf("      %s: %s (%s) %s", c.Node, strings.Join(c.Args, " "),
					c.Duration.Round(time.Millisecond), status(c)))
			}
		} else {
			out = append(out, summary(run))
		}
		i = j
	}
	return out
}

// eventLine prints "entered <step>: why" as the step's header, other events under it.
func eventLine(ev *incident.Event) string {
	if rest, ok := strings.CutPrefix(ev.Message, "entered "+string(ev.Step)); ok {
		rest = strings.TrimPrefix(rest, ": ")
		if rest != "" {
			rest = " — " + rest
		}
		return fmt.Sprintf("▶ %s%s", ev.Step, rest)
	}
	return fmt.Sprintf("    %s", ev.Message)
}

// summary is one line for a run of the same zmyctl command: on how many nodes, how they ended
// and how long they took.
func summary(run []*incident.Command) string {
	var failed []string
	lo, hi := run[0].Duration, run[0].Duration
	for _, c := range run {
		lo, hi = min(lo, c.Duration), max(hi, c.Duration)
		if c.Error != "" {
			failed = append(failed, c.Node+": "+c.Error)
		}
	}
	nodes := "1 node"
	if len(run) > 1 {
		nodes = fmt.Sprintf("%d nodes", len(run))
	}
	took := lo.Round(time.Millisecond).String()
	if hi.Round(time.Millisecond) != lo.Round(time.Millisecond) {
		took = fmt.Sprintf("%s–%s", lo.Round(time.Millisecond), hi.Round(time.Millisecond))
	}
	result := "ok"
	if len(failed) > 0 {
		result = fmt.Sprintf("%d ok, %d failed (%s)", len(run)-len(failed), len(failed), strings.Join(failed, "; "))
	}
	return fmt.Sprintf("      %s on %s: %s, %s", commandLine(run[0].Args), nodes, result, took)
}

func status(c *incident.Command) string {
	if c.Error != "" {
		return c.Error
	}
	return "ok"
}

// commandLine is a node command without what differs from node to node: "zmyctl raft suspend
// --force" for a zmyctl run, "POST /admin/v1/raft/suspend {"force":true}" for an admin API call
// (whose Args are method, URL and body).
func commandLine(args []string) string {
	if len(args) >= 2 && (args[0] == http.MethodGet || args[0] == http.MethodPost) {
		if u, err := url.Parse(args[1]); err == nil && u.Host != "" {
			return strings.Join(append([]string{args[0], u.Path}, args[2:]...), " ")
		}
	}
	return "zmyctl " + zmyctlWords(args)
}

// zmyctlWords is the zmyctl command in an argv, without the cluster's argv template before it
// (`zmyctl --endpoint …`, `ssh host zmyctl`) and without `-o json`: "raft suspend --force".
func zmyctlWords(argv []string) string {
	start := slices.IndexFunc(argv, func(a string) bool {
		return slices.Contains([]string{"status", "raft", "snapshot", "quorum", "debug"}, a)
	})
	if start < 0 {
		return strings.Join(argv, " ")
	}
	var words []string
	for i := start; i < len(argv); i++ {
		if (argv[i] == "-o" || argv[i] == "--output") && i+1 < len(argv) {
			i++
			continue
		}
		words = append(words, argv[i])
	}
	return strings.Join(words, " ")
}
