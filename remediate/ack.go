package remediate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zmyorg/zmy-responder/internal/incident"
)

// Sources of an acknowledgement, the values of acknowledgements_total{source}.
const (
	ackBySilence = "silence" // a human's silence whose comment matches silences.ack_comment_regex
	ackByAPI     = "api"     // POST /api/v1/incidents/{id}/ack, zmyrtool incidents ack
)

var ackSources = []string{ackBySilence, ackByAPI}

// Ack records that a human is on the incident. It approves nothing and stops nothing; one per
// person and source (the first is kept, later ones are noted on the timeline).
func (e *Engine) Ack(ctx context.Context, id string, a incident.Approval) (*incident.Incident, error) {
	a.By, a.Reason = strings.TrimSpace(a.By), strings.TrimSpace(a.Reason)
	if a.By == "" {
		return nil, fmt.Errorf("ack %s: %w", id, ErrInvalid)
	}
	inc, err := e.j.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !inc.Open() {
		return nil, fmt.Errorf("ack %s: %w (closed)", id, incident.ErrConflict)
	}
	e.recordAcks(ctx, id, []incident.Ack{{By: a.By, At: e.now(), Comment: a.Reason, Source: ackByAPI}})
	return e.j.Get(ctx, id)
}

// recordAcks journals the acknowledgements not recorded yet (by silence id, or by person for
// the API) and counts them.
func (e *Engine) recordAcks(ctx context.Context, id string, acks []incident.Ack) {
	if len(acks) == 0 {
		return
	}
	var added []incident.Ack
	jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := e.j.Update(jctx, id, func(inc *incident.Incident) error {
		added = added[:0]
		for _, a := range acks {
			if slices.ContainsFunc(inc.Acks, func(b incident.Ack) bool { return sameAck(a, b) }) {
				continue
			}
			inc.Acks = append(inc.Acks, a)
			msg := fmt.Sprintf("acknowledged by %s (%s)", a.By, a.Source)
			if a.Comment != "" {
				msg += ": " + a.Comment
			}
			inc.Timeline = append(inc.Timeline, incident.Event{At: a.At, Step: inc.Step, Message: msg})
			added = append(added, a)
		}
		if len(added) == 0 {
			return errNothingNew
		}
		inc.UpdatedAt = e.now()
		return nil
	})
	if err != nil && err != errNothingNew {
		e.log.Error("cannot journal an acknowledgement", "incident", id, "err", err)
		return
	}
	for _, a := range added {
		e.m.acks.WithLabelValues(a.Source).Inc()
		e.log.Info("incident acknowledged: the runbook goes on", "incident", id, "by", a.By, "source", a.Source,
			"silence", a.SilenceID, "comment", a.Comment)
	}
}

// errNothingNew aborts a journal update that would change nothing.
var errNothingNew = fmt.Errorf("nothing new")

// sameAck: a silence acknowledges once; a person acknowledges once through the API.
func sameAck(a, b incident.Ack) bool {
	if a.Source != b.Source {
		return false
	}
	if a.Source == ackBySilence {
		return a.SilenceID == b.SilenceID
	}
	return a.By == b.By
}
