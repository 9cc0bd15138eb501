package incident

import (
	"context"
	"fmt"
	"time"
)

// Retention: Prune deletes closed incidents whose close time is older than a cutoff, a few at a
// time, each batch its own short transaction, so that ingest never waits long behind it. The
// logic both stores share is here; each store walks its own keys.

// pruneBatch is how many incidents one prune transaction deletes at most (the etcd store also
// stays within its operations per transaction).
const pruneBatch = 32

// pruneScan bounds how many records one read of a prune examines, so that no read transaction
// stays open long (a long bbolt read holds off the writer's remap when the file must grow).
const pruneScan = 512

// pruneMaxKeys bounds the keys (alerts mostly) one prune transaction deletes: always at least
// one incident, then no more incidents once this many keys are reached.
const pruneMaxKeys = 4096

// pruneVerdict is what a prune decides about one incident, from its summary.
type pruneVerdict int

const (
	pruneKeep pruneVerdict = iota // open, or closed at or after the cutoff
	pruneDrop                     // closed before the cutoff
	pruneStop                     // opened after the cutoff: so is every later incident (sequences follow opening)
)

// judge decides about an incident closed or not before cutoff. An open incident is kept however
// old; a closed one without a close time (never written by this code) is kept too.
func judge(s Summary, cutoff time.Time) pruneVerdict {
	switch {
	case s.Open():
		return pruneKeep
	case s.OpenedAt.After(cutoff):
		return pruneStop
	case s.ClosedAt != nil && s.ClosedAt.Before(cutoff):
		return pruneDrop
	}
	return pruneKeep
}

// pruneTarget is an incident a prune deletes: its sequence and its group, whose latest pointer
// goes with it when it points there.
type pruneTarget struct {
	seq uint64
	g   group
}

func summaryOfRecord(seq uint64, rec []byte) (Summary, error) {
	s, err := decodeSummary(rec)
	if err != nil {
		return s, fmt.Errorf("decode incident %s: %w", FormatID(seq), err)
	}
	return s, nil
}

// pace waits after a batch as long as the batch took (at most a second): pruning then holds the
// store's write path at most half the time, and ingest waits behind at most one batch.
func pace(ctx context.Context, took time.Duration) error {
	t := time.NewTimer(min(took, time.Second))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("prune: %w", ctx.Err())
	}
}
