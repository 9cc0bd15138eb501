package zmy

import (
	"context"
	"strings"
)

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

// Actor is who runs a command: a responder replica, the incident it works on, and a token
// naming its journal ("<store>", or "<store>.<epoch>" when leadership is fenced by an epoch).
type Actor struct {
	Replica  string
	Incident string
	Token    string
}

// String is the ZMY_ACTOR form, "<replica>/<incident>/<token>".
func (a Actor) String() string { return a.Replica + "/" + a.Incident + "/" + a.Token }

// ParseActor reads the ZMY_ACTOR form; ok is false for anything else (e.g. a human's).
func ParseActor(s string) (a Actor, ok bool) {
	parts := strings.SplitN(s, "/", 3)
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return Actor{}, false
	}
	return Actor{Replica: parts[0], Incident: parts[1], Token: parts[2]}, true
}

// Store is the journal part of the token: what identifies one runbook's journal across replicas.
func (a Actor) Store() string {
	s, _, _ := strings.Cut(a.Token, ".")
	return s
}

// SameJournal reports whether b acts from the same journal as a, whichever replica and
// incident: a failover, or an earlier incident of this responder that left nodes suspended, is
// the same responder; a second responder with its own journal is not.
func (a Actor) SameJournal(b Actor) bool { return a.Store() == b.Store() }
