// Command zmysimctl is a lean build of `zmysim ctl`, the zmyctl-compatible CLI for simulated
// nodes: same arguments, outputs and exit codes, but it links only the standard library, so it
// starts about twice as fast. The responder execs zmyctl once per node and command, so in
// tests, the demo and benchmarks this start-up cost is most of a probe round.
package main

import (
	"context"
	"os"

	"github.com/zmyorg/zmy-responder/internal/simctl"
)

func main() {
	os.Exit(simctl.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
