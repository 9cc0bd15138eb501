package zmy

import "context"

// ActorEnv is the environment variable every zmyctl process gets: who is acting, as
// "<replica>/<incident>/<token>", so that a node's audit log can attribute each command, a
// node can say who suspended it (RaftState.SuspendedBy), and a stale leader's command can be
// told from the current one's.
const ActorEnv = "ZMY_ACTOR"

type actorKey struct{}

// WithActor returns a context whose node commands carry actor (ZMY_ACTOR).
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor of ctx, "" when none.
func ActorFrom(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}
