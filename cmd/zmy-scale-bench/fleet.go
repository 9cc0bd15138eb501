package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/zmyorg/zmy-responder/internal/sim"
)

// runFleet is the --fleet child: n simulated clusters in this one process (a process per
// cluster would cost 50 Go runtimes at N = 50), their endpoints written to readyFile, running
// until ctx ends.
func runFleet(ctx context.Context, clusters string, nodes int, writeRate float64, readyFile string) error {
	ns, err := ints(clusters)
	if err != nil || len(ns) != 1 {
		return fmt.Errorf("--clusters: want one number, got %q", clusters)
	}
	if readyFile == "" {
		return fmt.Errorf("--fleet.ready-file is required")
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400) // as `zmysim run` does
	}
	var ready []sim.ReadyInfo
	for i := range ns[0] {
		c, err := sim.Start(ctx, sim.Options{Cluster: clusterName(i), Nodes: nodes, WriteRate: writeRate})
		if err != nil {
			return err
		}
		defer c.Close()
		ready = append(ready, c.Endpoints())
	}
	b, err := json.Marshal(ready)
	if err != nil {
		return err
	}
	if err := sim.WriteFileAtomic(readyFile, b); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func clusterName(i int) string { return fmt.Sprintf("scale-%02d", i+1) }
