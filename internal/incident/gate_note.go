package incident

import (
	"strings"
	"time"
)

// GateNote is what the recovery gate waited for at its last reading, and when, as the engine
// wrote it in the timeline at awaiting_recovery ("gate closed: …"); "" before the first reading.
// The console and zmyrtool show it; a structured gate on the incident will replace it.
func (inc *Incident) GateNote() (string, time.Time) {
	for i := len(inc.Timeline) - 1; i >= 0; i-- {
		ev := inc.Timeline[i]
		if ev.Step != StepAwaitingRecovery {
			continue
		}
		if rest, ok := strings.CutPrefix(ev.Message, "gate closed: "); ok {
			return rest, ev.At
		}
		if strings.HasPrefix(ev.Message, "gate open") {
			return "nothing: " + ev.Message, ev.At
		}
	}
	return "", time.Time{}
}
