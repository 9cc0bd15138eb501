// Command zmy-demo is `make demo`: one split-brain incident on a simulated cluster, narrated from
// partition to recovery. Ctrl-C tears everything down; --keep leaves it running until then.
// --ha (`make demo-ha`) runs three replicas on etcd and kills the leader at the gate.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/alecthomas/kingpin/v2"

	"github.com/zmyorg/zmy-responder/internal/demo"
)

func main() { os.Exit(run()) }

func run() int {
	app := kingpin.New("zmy-demo", "Narrate one split-brain incident on a simulated ZMY cluster.")
	binDir := app.Flag("bin-dir", "Directory holding zmysim and zmy-responder.").Default("bin").String()
	dir := app.Flag("dir", "Scratch directory (default: a new temporary one).").String()
	timeout := app.Flag("timeout", "Give up after this long.").Default("5m").Duration()
	keep := app.Flag("keep", "Keep everything running after the incident until Ctrl-C.").Bool()
	ha := app.Flag("ha", "Three responders sharing a Debian etcd (etcd-server); the cluster's leader is killed at the recovery gate and another replica finishes.").Bool()
	verbose := app.Flag("verbose", "Print every node command in full, not one summary per command and step.").Short('v').Bool()
	kingpin.MustParse(app.Parse(os.Args[1:]))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dir == "" {
		d, err := demo.DefaultDir()
		if err != nil {
			fmt.Fprintln(os.Stderr, "zmy-demo:", err)
			return 1
		}
		*dir = d
	}
	root, _ := os.Getwd()
	bin, _ := filepath.Abs(*binDir)
	err := demo.Run(ctx, demo.Options{RepoRoot: root, BinDir: bin, Dir: *dir, Timeout: *timeout, Keep: *keep, Verbose: *verbose, HA: *ha}, os.Stdout)
	switch {
	case err != nil && ctx.Err() != nil:
		// Ctrl-C: the stack is already torn down; say so rather than print "context canceled".
		fmt.Fprintln(os.Stderr, "zmy-demo: interrupted; every process it started is stopped")
		return 130
	case err != nil:
		fmt.Fprintln(os.Stderr, "zmy-demo:", err)
		return 1
	}
	return 0
}
