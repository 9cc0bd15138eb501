package sim

import (
	"slices"
	"time"
)

// ExitNoAnswer is the exit recorded in the audit log for a command the node never answered
// (injected hang, or the caller gave up during injected slowness).
const ExitNoAnswer = -1

// auditOutputMax caps the output excerpt kept per audited command.
const auditOutputMax = 512

// AuditEntry is one zmyctl command a node received.
type AuditEntry struct {
	Time  time.Time `json:"time"`
	Node  string    `json:"node"`
	Args  []string  `json:"args"`
	Actor string    `json:"actor,omitempty"` // the caller's ZMY_ACTOR
	// API is the admin API call ("POST /admin/v1/raft/suspend") when the command came through
	// the per-command API; empty for zmyctl's /admin/v1/exec. Args are the zmyctl form either way.
	API      string        `json:"api,omitempty"`
	Exit     int           `json:"exit"`
	Output   string        `json:"output"` // capped excerpt of stdout and stderr
	Duration time.Duration `json:"duration_ns"`
}

func (c *Cluster) record(node string, req execRequest, api string, start time.Time, exit int, output string) {
	if len(output) > auditOutputMax {
		output = output[:auditOutputMax] + "…"
	}
	e := AuditEntry{Time: start, Node: node, Args: slices.Clone(req.Args), Actor: req.Actor, API: api, Exit: exit,
		Output: output, Duration: time.Since(start)}
	c.mu.Lock()
	c.audit = append(c.audit, e)
	c.mu.Unlock()
}

// Audit returns every command received so far, oldest first.
func (c *Cluster) Audit() []AuditEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.audit)
}

// Invariants returns every violation recorded so far; a correct runbook leaves it empty.
func (c *Cluster) Invariants() []Violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Violation{}, c.m.violations...)
}
