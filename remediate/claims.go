package remediate

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// claimsKey is the state document of the incidents that passed the guards and are not closed
// (id → cluster): what blast radius and anti-flap count. It lives in the store, not in memory,
// so that every replica sharing the store counts every other replica's remediations, and a
// restart counts the ones in flight. Updating it is the store's atomic read-modify-write, so
// two incidents, on any replicas, cannot both pass blast radius at once.
const claimsKey = "remediate/claims"

// storeClaims is the claimer on the store's claims document.
type storeClaims struct {
	j Store
}

// claim decides with the other claims — the document's, pruned of incidents no longer open (a
// crash between closing and releasing leaves nothing behind), plus every open incident past
// the guards (a journal written before the document existed) — and records the claim if the
// guards let the incident through.
func (c storeClaims) claim(ctx context.Context, id, cluster string,
	decide func(others map[string]string) (string, *refusal)) (string, *refusal, error) {
	open, err := c.open(ctx)
	if err != nil {
		return "", nil, err
	}
	var name string
	var ref *refusal
	err = c.j.UpdateState(ctx, claimsKey, func(cur []byte) ([]byte, error) {
		claims, err := decodeClaims(cur)
		if err != nil {
			return nil, err
		}
		others := merge(claims, open)
		delete(others, id)
		if name, ref = decide(others); ref == nil {
			claims[id] = cluster
		}
		return json.Marshal(claims)
	})
	if err != nil {
		return "", nil, fmt.Errorf("claim cluster %s for %s: %w", cluster, id, err)
	}
	return name, ref, nil
}

// release removes the incident's claim (it closed).
func (c storeClaims) release(ctx context.Context, id string) error {
	err := c.j.UpdateState(ctx, claimsKey, func(cur []byte) ([]byte, error) {
		claims, err := decodeClaims(cur)
		if err != nil {
			return nil, err
		}
		if _, ok := claims[id]; !ok {
			return cur, nil
		}
		delete(claims, id)
		return json.Marshal(claims)
	})
	if err != nil {
		return fmt.Errorf("release the claim of %s: %w", id, err)
	}
	return nil
}

// current lists the claims of open incidents, for the dry run.
func (c storeClaims) current(ctx context.Context) (map[string]string, error) {
	open, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	raw, err := c.j.GetState(ctx, claimsKey)
	if err != nil {
		return nil, fmt.Errorf("read claims: %w", err)
	}
	claims, err := decodeClaims(raw)
	if err != nil {
		return nil, err
	}
	return merge(claims, open), nil
}

// open lists the incidents not closed nor closing, by id.
func (c storeClaims) open(ctx context.Context) (map[string]*incident.Incident, error) {
	incs, err := c.j.List(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("list open incidents: %w", err)
	}
	open := make(map[string]*incident.Incident, len(incs))
	for _, inc := range incs {
		if inc.Open() && inc.Outcome == "" {
			open[inc.ID] = inc
		}
	}
	return open, nil
}

// merge prunes the claims of incidents no longer open (in place) and returns them with every
// open incident past the guards.
func merge(claims map[string]string, open map[string]*incident.Incident) map[string]string {
	maps.DeleteFunc(claims, func(id, _ string) bool { return open[id] == nil })
	out := maps.Clone(claims)
	for id, inc := range open {
		if pastGuards(inc.Step) {
			out[id] = inc.Cluster
		}
	}
	return out
}

func decodeClaims(raw []byte) (map[string]string, error) {
	claims := map[string]string{}
	if raw == nil {
		return claims, nil
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	return claims, nil
}
