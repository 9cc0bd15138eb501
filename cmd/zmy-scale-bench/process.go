package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/stack"
)

// child is a process the benchmark started: a stack.Process (its own process group, its output
// in dir/name.log), with the readings the benchmark takes of it.
type child struct{ *stack.Process }

func startChild(dir, name string, argv []string) (*child, error) {
	p, err := stack.StartProcess(dir, name, argv, nil)
	if err != nil {
		return nil, err
	}
	return &child{p}, nil
}

// stop is SIGTERM to the group, SIGKILL after 10 s.
func (c *child) stop() { c.Stop(10 * time.Second) }

func (c *child) tail() string { return c.Tail(2000) }

// waitFor polls cond every 50 ms until it holds, the child exits, or the deadline passes.
func (c *child) waitFor(ctx context.Context, what string, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if c.Exited() {
			return fmt.Errorf("%s exited before %s:\n%s", c.Name, what, c.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s within %s:\n%s", c.Name, what, d, c.tail())
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// cpu is the process's own user+system CPU time, and that of its children it has waited for
// (the zmyctl processes, for the responder), from /proc/PID/stat.
func (c *child) cpu() (self, children time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Pid()))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name's closing parenthesis start at field 3: utime, stime,
	// cutime and cstime (fields 14–17) are the 12th to 15th of them.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", c.Pid(), len(f))
	}
	var ticks [4]int64
	for i := range ticks {
		if ticks[i], err = strconv.ParseInt(f[11+i], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/stat: %w", c.Pid(), err)
		}
	}
	const hz = 100 // USER_HZ
	return time.Duration(ticks[0]+ticks[1]) * time.Second / hz, time.Duration(ticks[2]+ticks[3]) * time.Second / hz, nil
}

// memory is VmRSS and VmHWM (peak) in bytes.
func (c *child) memory() (rss, peak int64, err error) { return stack.ProcessMemory(c.Pid()) }

// runQueueWait is how long the process's threads have waited for a CPU so far, summed over the
// threads alive now (/proc/PID/task/*/schedstat, second field): time the responder was ready to
// run and the machine gave it no core.
func (c *child) runQueueWait() (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", c.Pid())
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/%s/schedstat: %w", dir, t.Name(), err)
		}
		total += time.Duration(ns)
	}
	return total, nil
}
