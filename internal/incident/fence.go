package incident

import (
	"context"
	"errors"
	"time"
)

// Fence is the leadership a write depends on: a cluster's election key and the revision at
// which the writer's campaign created it (its fencing token). A store shared by replicas commits
// a write made under a fence only while the key still exists with that revision, so a deposed
// leader can neither journal a transition nor, since every step is journaled before it acts, act
// on it. The embedded single-replica journal has one writer and ignores fences.
type Fence struct {
	Key      string
	Revision int64
	// Until is when the leadership may lapse (the lease not renewed since): another replica may
	// lead soon after, so nothing the leader started may still run then. Zero: no bound. It is
	// not part of the write condition.
	Until time.Time
}

type fenceKey struct{}

// WithFence returns a context whose store writes are conditioned on f.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence of ctx, if any.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok && f.Key != ""
}

// ErrFenced says a write was refused because the writer no longer holds the leadership its
// fence names.
var ErrFenced = errors.New("write refused: leadership lost (fenced)")
