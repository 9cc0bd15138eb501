package remediate

import (
	"context"
	"fmt"
	"time"

	"github.com/go-openapi/strfmt"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// The paging contract with deploy/alertmanager.yml: on-call's route for ZMY_Quorum_Down waits
// 1m before its first notification, then re-evaluates the group every 10s, so the alert pages
// on-call about 10s after nothing silences it any more.
//   - While the runbook works, the incident's silence mutes it (silence_duration, extended every
//     extend_every): nobody is paged while a remediation goes well.
//   - When the responder gives up (any outcome but recovered) it expires the silence at once.
//   - When the responder dies, nobody extends the silence: it ends within silence_duration.
//   - After recovered, the silence ends recovered_grace later rather than at once, so that
//     Prometheus sees the recovery and resolves the alert first; an alert still firing after
//     that pages on-call.
//
// Hooks: finish.go's expireSilences ends each silence of a closing incident with endOnClose;
// the orphan sweep (api.go, sweepOnce) leaves a silence alone while inRecoveredGrace.

// endOnClose ends one silence of a closing incident, at once or, after recovered,
// recovered_grace from now. It returns when the silence ends.
func (e *Engine) endOnClose(ctx context.Context, sil *silencer, inc *incident.Incident, id string) (time.Time, error) {
	now := e.now()
	grace := time.Duration(e.config().Alertmanager.RecoveredGrace)
	if inc.Outcome != incident.OutcomeRecovered || grace <= 0 {
		return now, sil.Expire(ctx, id)
	}
	return sil.EndAt(ctx, id, now.Add(grace))
}

// inRecoveredGrace reports whether the incident closed recovered less than recovered_grace
// ago: its silence is meant to end by itself.
func (e *Engine) inRecoveredGrace(inc *incident.Incident) bool {
	return inc.Outcome == incident.OutcomeRecovered && inc.ClosedAt != nil &&
		e.now().Before(inc.ClosedAt.Add(time.Duration(e.config().Alertmanager.RecoveredGrace)))
}

// EndAt makes an active silence end at the given time, or sooner if it already does; an
// expired one is left as it is. It returns when the silence ends.
func (s *silencer) EndAt(ctx context.Context, id string, at time.Time) (time.Time, error) {
	cur, err := s.get(ctx, id)
	if err != nil {
		return time.Time{}, fmt.Errorf("end silence %s at %s: %w", id, at.Format(time.RFC3339), err)
	}
	ends := time.Time(deref(cur.EndsAt))
	if state(cur) == "expired" || (!ends.IsZero() && !ends.After(at)) {
		return ends, nil
	}
	cur.EndsAt = ptr(strfmt.DateTime(at))
	if _, err := s.post(ctx, id, cur.Silence); err != nil {
		return time.Time{}, fmt.Errorf("end silence %s at %s: %w", id, at.Format(time.RFC3339), err)
	}
	return at, nil
}
