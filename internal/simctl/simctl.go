// Package simctl is the client half of `zmysim ctl`: it forwards a zmyctl command to a
// simulated node's admin API and prints what the node answered. It imports neither package net
// nor anything outside the standard library, so that the lean, static `zmysimctl` binary starts
// in about a millisecond: the driver execs it once per node and command, and process start-up
// dominated probe latency (see post.go).
package simctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Exit codes used here; they equal internal/zmy's contract (a test checks it).
const (
	exitError       = 1
	exitUsage       = 2
	exitUnreachable = 3
)

// HTTPTimeout is deliberately generous: a hung node makes ctl hang, as a real zmyctl would,
// and the driver must kill it at its own deadline.
const HTTPTimeout = 5 * time.Minute

// maxAnswer bounds what ctl reads from a node.
const maxAnswer = 16 << 20

// ActorEnv is the environment variable naming who runs the command (internal/zmy.ActorEnv; a
// test checks they are equal). ctl forwards it so the node's audit log can attribute commands.
const ActorEnv = "ZMY_ACTOR"

// Request is what ctl posts to /admin/v1/exec.
type Request struct {
	Args  []string `json:"args"`
	Actor string   `json:"actor,omitempty"` // ZMY_ACTOR of the caller
}

// Response is the node's answer: what zmyctl prints and its exit code.
type Response struct {
	Exit   int    `json:"exit"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

// ErrorResponse is a non-200 answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Run is `zmysim ctl --endpoint URL <args…>`: it sends the command to the node's admin API on
// behalf of actor (may be empty), prints what the node answered and returns zmyctl's exit code.
func Run(ctx context.Context, endpoint, actor string, args []string, stdout, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "error: "+format+"\n", a...)
		return code
	}
	if len(args) == 0 {
		return fail(exitUsage, "no command given")
	}
	if endpoint == "" {
		return fail(exitUsage, "--endpoint is required")
	}
	addr, err := parseEndpoint(endpoint)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	body, err := json.Marshal(Request{Args: args, Actor: actor})
	if err != nil {
		return fail(exitError, "encode command: %v", err)
	}
	code, raw, err := post(ctx, addr, "/admin/v1/exec", body)
	var unreachable *unreachableError
	switch {
	case errors.As(err, &unreachable):
		return fail(exitUnreachable, "node unreachable: %v", err)
	case err != nil:
		return fail(exitError, "malformed answer from node: %v", err)
	}
	if code != 200 {
		var e ErrorResponse
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return fail(exitError, "%s", e.Error)
		}
		return fail(exitError, "node answered HTTP %d", code)
	}
	var res Response
	if err := json.Unmarshal(raw, &res); err != nil {
		return fail(exitError, "malformed answer from node: %v", err)
	}
	_, _ = io.WriteString(stdout, res.Stdout)
	_, _ = io.WriteString(stderr, res.Stderr)
	return res.Exit
}

// Main parses `[--endpoint URL] [-o json] <command words…>` (flags anywhere, as zmyctl takes
// them) and runs the command on behalf of $ZMY_ACTOR. It is the whole of the lean `zmysimctl`
// binary.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var endpoint, output string
	var words []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(a, "=")
		switch name {
		case "--endpoint", "-o", "--output":
			if !hasValue {
				if i+1 >= len(args) {
					fmt.Fprintf(stderr, "error: %s needs a value\n", a)
					return exitUsage
				}
				i++
				value = args[i]
			}
			if name == "--endpoint" {
				endpoint = value
			} else {
				output = value
			}
		default:
			words = append(words, a)
		}
	}
	if output != "" {
		words = append(words, "-o", output)
	}
	return Run(ctx, endpoint, os.Getenv(ActorEnv), words, stdout, stderr)
}
