package zmy

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on with errors.Is. Every error the driver returns wraps one of
// them or an *ExitStatusError, and says which node and which command failed.
var (
	ErrTimeout          = errors.New("timed out")
	ErrUnreachable      = errors.New("node unreachable")
	ErrNoUniqueMajority = errors.New("no unique majority")
	ErrNotConverged     = errors.New("network not converged")
	ErrRefused          = errors.New("refused by node")
	ErrMalformed        = errors.New("malformed output")
)

// ExitStatusError is a non-zero zmyctl exit, or an error answer of the admin API (HTTPStatus
// set, Code the exit its error code maps to). Exits the contract gives a meaning to also match
// the sentinel errors above; the others match only *ExitStatusError.
type ExitStatusError struct {
	Code       int
	Stderr     string // capped stderr, trimmed; the admin API's error message
	HTTPStatus int    // the admin API's HTTP status; 0 for zmyctl
}

func (e *ExitStatusError) Error() string {
	if r := stderrReason(e.Stderr); r != "" {
		return e.status() + ": " + r
	}
	return e.status()
}

// status says how the command failed: "zmyctl exited 5" or "admin API answered 409".
func (e *ExitStatusError) status() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("admin API answered %d", e.HTTPStatus)
	}
	return fmt.Sprintf("zmyctl exited %d", e.Code)
}

// sentinelForExit maps the contract's exit codes to sentinel errors; nil for codes without one.
func sentinelForExit(code int) error {
	switch code {
	case ExitUnreachable:
		return ErrUnreachable
	case ExitNoUniqueMajority:
		return ErrNoUniqueMajority
	case ExitNotConverged:
		return ErrNotConverged
	case ExitRefused:
		return ErrRefused
	}
	return nil
}

// CommandError is every error the driver returns: which command on which node failed, and why.
// It unwraps to the sentinel (Kind), the *ExitStatusError (Exit) when zmyctl exited non-zero, and the
// underlying cause (Err), so errors.Is and errors.As see all three.
type CommandError struct {
	Command string           // command name, e.g. "suspend" (see Commands)
	Node    string           // node id
	Kind    error            // one of the sentinel errors, or nil
	Exit    *ExitStatusError // set when zmyctl exited non-zero
	Err     error            // underlying cause, or nil
}

// Error reads like "suspend n3: zmyctl exited 3: node unreachable: dial tcp …: connection refused"
// or "recover n1: admin API answered 409: network not converged: groups … are still cut off".
func (e *CommandError) Error() string {
	var b strings.Builder
	b.WriteString(e.Command)
	b.WriteString(" ")
	b.WriteString(e.Node)
	b.WriteString(": ")
	parts := make([]string, 0, 3)
	if e.Exit != nil {
		parts = append(parts, e.Exit.status())
	}
	if e.Kind != nil {
		parts = append(parts, e.Kind.Error())
	}
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	} else if e.Exit != nil {
		r := stderrReason(e.Exit.Stderr)
		// zmyctl often says what the exit code already says ("error: node unreachable: …");
		// don't print it twice.
		if e.Kind != nil {
			r = strings.TrimPrefix(strings.TrimPrefix(r, e.Kind.Error()), ": ")
		}
		if r != "" {
			parts = append(parts, r)
		}
	}
	b.WriteString(strings.Join(parts, ": "))
	return b.String()
}

// Unwrap exposes the sentinel, the exit error and the cause to errors.Is/As.
func (e *CommandError) Unwrap() []error {
	errs := make([]error, 0, 3)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Exit != nil {
		errs = append(errs, e.Exit)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// stderrReason is the first non-empty stderr line without the contract's "error: " prefix, capped
// so a chatty zmyctl cannot blow up log lines and incident records.
func stderrReason(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		line = strings.TrimPrefix(line, "error: ")
		const maxReason = 200
		if len(line) > maxReason {
			line = line[:maxReason] + "…"
		}
		return line
	}
	return ""
}
