package remediate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/incident"
)

// stageSilencing creates the incident's one silence and moves on to containment whatever
// Alertmanager says: a down Alertmanager never delays stopping the bleeding (the keeper
// retries in the background). A human's silence seen here means a human took over before we
// touched anything.
func stageSilencing(ctx context.Context, sc *stageCtx) Result {
	started := func(inc *incident.Incident) { inc.RemediationStarted = true }
	if sc.humans == nil {
		res := Done("silencing disabled (no alertmanager.url)").With(started)
		res.status = statusSkipped
		return res
	}
	// All of this step's Alertmanager work shares one alertmanager.timeout: a hung
	// Alertmanager delays containment by that much at most.
	actx, cancel := context.WithTimeout(ctx, time.Duration(sc.cfg.Alertmanager.Timeout))
	defer cancel()
	if t := sc.humans.takenOver(actx, sc.inc); t != "" {
		return TakenOver(t)
	}
	note := "silence in place"
	if err := sc.humans.silence(actx, sc.inc); err != nil {
		note = "silence not created yet, retrying in the background: " + err.Error()
	}
	return Done(note).With(started)
}

// runnerHumans is the humans of one incident's runner: Alertmanager through the silencer, and
// what the incident's silence keeper saw.
type runnerHumans struct {
	e   *Engine
	r   *runner
	sil *silencer
}

func (h runnerHumans) takenOver(ctx context.Context, inc *incident.Incident) string {
	hs, err := h.sil.Humans(ctx, inc)
	if err != nil {
		return h.e.takeoverOf(h.r) // Alertmanager unreachable: the keeper keeps looking
	}
	h.e.noteHumans(ctx, h.r, inc, hs)
	return h.e.takeoverOf(h.r)
}

func (h runnerHumans) silence(ctx context.Context, inc *incident.Incident) error {
	return h.e.ensureSilence(ctx, h.r, h.sil, inc.ID)
}

// silenceStatus is the incident's silence as journaled.
type silenceStatus struct {
	id     string
	lastAt time.Time // last created/extended
	ended  bool      // it was expired (by us or by a human): never create another
	ends   time.Time // the end we gave it last
}

func currentSilence(inc *incident.Incident) silenceStatus {
	var st silenceStatus
	for _, s := range inc.Silences {
		switch s.Action {
		case silenceCreated, silenceExtended:
			if s.ID != "" {
				st.id, st.lastAt, st.ended, st.ends = s.ID, s.At, false, s.EndsAt
			}
		case silenceExpired, silenceHumanExpired:
			if s.ID == st.id {
				st.ended = true
			}
		case silenceLapsed:
			if s.ID == st.id {
				st.id = "" // ensureSilence creates the next one
			}
		}
	}
	return st
}

// ensureSilence makes sure the incident has its one silence: adopt one Alertmanager already
// has for it (created just before a crash), else create it. Every action is journaled and
// counted.
func (e *Engine) ensureSilence(ctx context.Context, r *runner, sil *silencer, id string) error {
	return e.withSilence(ctx, r, id, func(inc *incident.Incident, st silenceStatus, now time.Time) error {
		if st.ended || st.id != "" {
			return nil
		}
		found, err := sil.Find(ctx, inc.Cluster, id)
		if err != nil {
			e.recordSilence(ctx, id, incident.Silence{Action: silenceFailed, At: now, Error: err.Error()})
			return err
		}
		if found != nil {
			ends := time.Time{}
			if found.EndsAt != nil {
				ends = time.Time(*found.EndsAt)
			}
			e.recordSilence(ctx, id, incident.Silence{ID: deref(found.ID), Action: silenceCreated, At: now, EndsAt: ends})
			return nil
		}
		sid, ends, err := sil.Create(ctx, inc, now)
		if err != nil {
			e.recordSilence(ctx, id, incident.Silence{Action: silenceFailed, At: now, Error: err.Error()})
			return err
		}
		e.recordSilence(ctx, id, incident.Silence{ID: sid, Action: silenceCreated, At: now, EndsAt: ends})
		e.failpoint("silence:created")
		return nil
	})
}

// extendSilence pushes the incident's silence end out once extend_every has passed since it
// was created or last extended. A silence a human expired is not put back.
func (e *Engine) extendSilence(ctx context.Context, r *runner, sil *silencer, id string) error {
	return e.withSilence(ctx, r, id, func(_ *incident.Incident, st silenceStatus, now time.Time) error {
		if st.ended || st.id == "" || now.Sub(st.lastAt) < time.Duration(e.config().Alertmanager.ExtendEvery) {
			return nil
		}
		sid, ends, err := sil.Extend(ctx, st.id, now)
		if errors.Is(err, errSilenceGone) {
			e.silenceEnded(ctx, id, st, ends)
			return nil
		}
		if err != nil {
			e.recordSilence(ctx, id, incident.Silence{ID: st.id, Action: silenceFailed, At: now, Error: err.Error()})
			return err
		}
		e.recordSilence(ctx, id, incident.Silence{ID: sid, Action: silenceExtended, At: now, EndsAt: ends})
		return nil
	})
}

// withSilence runs fn on the incident's journaled silence, one silence operation of the
// incident at a time; nothing runs once the incident is closing.
func (e *Engine) withSilence(ctx context.Context, r *runner, id string, fn func(*incident.Incident, silenceStatus, time.Time) error) error {
	r.silMu.Lock()
	defer r.silMu.Unlock()
	inc, err := e.j.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("read incident %s: %w", id, err)
	}
	if !inc.Open() || inc.Outcome != "" || inc.Abort != nil {
		return nil
	}
	return fn(inc, currentSilence(inc), e.now())
}

// config returns the current configuration.
func (e *Engine) config() *config.Config {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg
}

// recordSilence journals one silence action on the incident and counts it. The journal write
// is best effort: the action happened whether or not it could be recorded.
func (e *Engine) recordSilence(ctx context.Context, id string, s incident.Silence) {
	e.m.silences.WithLabelValues(s.Action).Inc()
	switch s.Action {
	case silenceCreated, silenceExtended, silenceExpired:
		e.log.Info("silence "+s.Action, "incident", id, "silence", s.ID, "ends_at", s.EndsAt)
	case silenceFailed:
		e.log.Warn("silence action failed", "incident", id, "silence", s.ID, "err", s.Error)
	case silenceLapsed:
		e.log.Warn("our silence lapsed before it could be extended; creating a new one", "incident", id, "silence", s.ID)
	default: // a human's: foreign, human_expired
		e.log.Warn("a human acted on the cluster's silences", "incident", id, "action", s.Action, "silence", s.ID, "detail", s.Error)
	}
	// Recorded even when the Alertmanager call used up ctx: the journal write has its own bound.
	jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := e.j.Update(jctx, id, func(inc *incident.Incident) error {
		inc.Silences = append(inc.Silences, s)
		inc.UpdatedAt = e.now()
		return nil
	})
	if err != nil {
		e.log.Error("cannot journal silence action", "incident", id, "action", s.Action, "silence", s.ID, "err", err)
	}
}

// takeover records a human's silence and stops the incident's automatic steps.
func (e *Engine) takeover(ctx context.Context, r *runner, id string, f *foreignSilence) string {
	t := fmt.Sprintf("manual silence %s by %s", f.id, f.by)
	e.mu.Lock()
	already := r.takeover != ""
	r.takeover = t
	if r.stageCancel != nil {
		r.stageCancel()
	}
	e.mu.Unlock()
	if !already {
		e.recordSilence(ctx, id, incident.Silence{ID: f.id, Action: silenceForeign, At: e.now(), EndsAt: f.ends,
			Error: "silence created by " + f.by + ": " + f.comment})
		e.log.Warn("a human silenced the cluster: stopping automatic steps", "incident", id, "silence", f.id, "by", f.by)
	}
	return t
}

// keepSilence runs beside an incident past the guards: it retries a failed creation with
// backoff, extends the silence every extend_every, and every silences.watch_interval looks at
// what humans did: a takeover silence, an acknowledgement, an expiry of our silence.
func (e *Engine) keepSilence(ctx context.Context, r *runner) {
	b := newBackoff(200*time.Millisecond, time.Minute)
	e.mu.Lock()
	cluster := r.cluster
	e.mu.Unlock()
	for {
		if _, err := e.lead.Acting(cluster); err != nil {
			return // the cluster's leader keeps the silence
		}
		_, _, _, sil := e.snapshot(cluster)
		cfg := e.config()
		wait := max(min(time.Duration(cfg.Alertmanager.ExtendEvery), time.Duration(cfg.Silences.WatchInterval)), time.Millisecond)
		if sil != nil {
			err := e.ensureSilence(ctx, r, sil, r.id)
			if err == nil {
				err = e.extendSilence(ctx, r, sil, r.id)
			}
			if err != nil {
				wait = min(b.next(), wait)
			} else {
				b.reset()
			}
			if inc, err := e.j.Get(ctx, r.id); err == nil && inc.Open() && inc.Outcome == "" {
				if hs, err := sil.Humans(ctx, inc); err == nil {
					e.noteHumans(ctx, r, inc, hs)
				}
			}
		}
		if !sleep(ctx, wait, nil) {
			return
		}
	}
}

// noteHumans journals what humans did with silences: acknowledgements (the runbook goes on), an
// expiry of our silence (not put back: they want to be paged), and a takeover (the running step
// is cancelled and the incident handed to them).
func (e *Engine) noteHumans(ctx context.Context, r *runner, inc *incident.Incident, hs humanSilences) {
	var acks []incident.Ack
	for _, f := range hs.acks {
		acks = append(acks, incident.Ack{By: f.by, At: e.now(), Comment: f.comment, Source: ackBySilence, SilenceID: f.id})
	}
	e.recordAcks(ctx, inc.ID, acks)
	ours := currentSilence(inc)
	for _, x := range hs.expired {
		if x.id == ours.id && !ours.ended {
			e.silenceEnded(ctx, inc.ID, ours, x.ends)
		}
	}
	if hs.takeover != nil {
		e.takeover(ctx, r, inc.ID, hs.takeover)
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// lapseSlack: a silence that ended this close to the end we gave it lapsed; one that ended
// earlier was expired by a human.
const lapseSlack = 2 * time.Second

// lapsed reports whether our silence ended at the end we gave it (rather than early).
func lapsed(st silenceStatus, endedAt time.Time) bool {
	return !st.ends.IsZero() && !endedAt.IsZero() && !endedAt.Before(st.ends.Add(-lapseSlack))
}

// silenceEnded records how our silence ended: a human expired it early (they want to be paged:
// not put back), or it lapsed at the end we gave it because we could not extend it in time (a
// new one is created, so a slow Alertmanager does not page on-call in the middle of a run).
func (e *Engine) silenceEnded(ctx context.Context, id string, st silenceStatus, endedAt time.Time) {
	if lapsed(st, endedAt) {
		e.recordSilence(ctx, id, incident.Silence{ID: st.id, Action: silenceLapsed, At: e.now(), EndsAt: endedAt,
			Error: "lapsed before it could be extended; a new one is created"})
		return
	}
	e.recordSilence(ctx, id, incident.Silence{ID: st.id, Action: silenceHumanExpired, At: e.now(), EndsAt: endedAt,
		Error: "expired by someone else: they want to be paged; not put back"})
}
