package demo

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Two readings of one incident, as the demo polls it: the second holds containing's commands,
// journaled together with the move to snapshotting, and snapshotting's own.
func readings() (first, second *incident.Incident) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	cmd := func(node string, step incident.Step, ms, took int, words ...string) incident.Command {
		argv := append([]string{"/usr/bin/zmysimctl", "--endpoint", "http://127.0.0.1:1"}, words...)
		return incident.Command{Node: node, Args: append(argv, "-o", "json"), Step: step, Started: at(ms),
			Duration: time.Duration(took) * time.Millisecond}
	}
	first = &incident.Incident{Timeline: []incident.Event{
		{At: at(0), Step: incident.StepConfirming, Message: "entered confirming"},
		{At: at(100), Step: incident.StepContaining, Message: "entered containing: silence in place"},
	}}
	second = &incident.Incident{Timeline: append(first.Timeline,
		incident.Event{At: at(400), Step: incident.StepSnapshotting, Message: "entered snapshotting: all 3 nodes suspended"},
		incident.Event{At: at(401), Step: incident.StepSnapshotting, Message: "snapshot tag pre-recover-1"},
	)}
	for i, n := range []string{"n1", "n2", "n3"} {
		second.Commands = append(second.Commands, cmd(n, incident.StepContaining, 110+i, 30+10*i, "raft", "suspend", "--force"))
	}
	for i, n := range []string{"n1", "n2", "n3"} {
		second.Commands = append(second.Commands, cmd(n, incident.StepContaining, 200+i, 20, "raft", "state"))
	}
	c := cmd("n2", incident.StepSnapshotting, 410, 50, "snapshot", "save", "--tag", "pre-recover-1")
	c.Error = "zmyctl exited 3: node unreachable"
	second.Commands = append(second.Commands, cmd("n1", incident.StepSnapshotting, 410, 40, "snapshot", "save", "--tag", "pre-recover-1"), c)
	return first, second
}

func TestProgressHeadersThenSummaries(t *testing.T) {
	first, second := readings()
	p := progress{}
	require.Equal(t, []string{
		"▶ confirming",
		"▶ containing — silence in place",
	}, p.next(first))
	require.Equal(t, []string{
		"      zmyctl raft suspend --force on 3 nodes: ok, 30ms–50ms",
		"      zmyctl raft state on 3 nodes: ok, 20ms",
		"▶ snapshotting — all 3 nodes suspended",
		"    snapshot tag pre-recover-1",
		"      zmyctl snapshot save --tag pre-recover-1 on 2 nodes: 1 ok, 1 failed (n2: zmyctl exited 3: node unreachable), 40ms–50ms",
	}, p.next(second))
	require.Empty(t, p.next(second), "nothing new")
}

func TestProgressVerbose(t *testing.T) {
	first, second := readings()
	p := progress{verbose: true}
	p.next(first)
	lines := p.next(second)
	require.Len(t, lines, 2+6+2) // two events, every command
	require.Equal(t, "      n1: /usr/bin/zmysimctl --endpoint http://127.0.0.1:1 raft suspend --force -o json (30ms) ok", lines[0])
	require.Equal(t, "▶ snapshotting — all 3 nodes suspended", lines[6])
	require.Equal(t, fmt.Sprintf("      n2: /usr/bin/zmysimctl --endpoint http://127.0.0.1:1 snapshot save --tag pre-recover-1 -o json (50ms) %s",
		"zmyctl exited 3: node unreachable"), lines[9])
}

// The api driver's commands (method, URL, body) are summarised by their path, whatever the node.
func TestProgressAdminAPI(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	inc := &incident.Incident{Timeline: []incident.Event{{At: t0, Step: incident.StepContaining, Message: "entered containing"}}}
	for i, n := range []string{"n1", "n2", "n3"} {
		inc.Commands = append(inc.Commands, incident.Command{Node: n, Step: incident.StepContaining,
			Args:    []string{"POST", fmt.Sprintf("http://127.0.0.1:%d/admin/v1/raft/suspend", 7001+i), `{"force":true}`},
			Started: t0.Add(time.Millisecond), Duration: 2 * time.Millisecond})
	}
	p := progress{}
	require.Equal(t, []string{
		"▶ containing",
		`      POST /admin/v1/raft/suspend {"force":true} on 3 nodes: ok, 2ms`,
	}, p.next(inc))
}

func TestZmyctlWords(t *testing.T) {
	for argv, want := range map[string][]string{
		"raft suspend --force":  {"zmyctl", "--endpoint", "10.0.0.1:9000", "raft", "suspend", "--force", "-o", "json"},
		"status --quorum":       {"ssh", "db1", "zmyctl", "-o", "json", "status", "--quorum"},
		"quorum recover --auto": {"quorum", "recover", "--auto"},
		"custom thing":          {"custom", "thing"},
	} {
		require.Equal(t, argv, zmyctlWords(want))
	}
}
