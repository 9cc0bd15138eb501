package incident

import (
	"fmt"
	"time"
)

// applyUpdate is the one Update rule of every store: fn changes inc (a private copy of the
// stored incident, alerts included), then the store stamps UpdatedAt, and closing stamps
// ClosedAt. fnErr is fn's own error, which Update returns as it is; err is a rule fn broke:
// changing the incident's ID, or reopening a closed incident (ErrConflict). closed says the
// update closes the incident, which frees its (cluster, alertname) for a new one.
func applyUpdate(inc *Incident, seq uint64, fn func(*Incident) error, now time.Time) (closed bool, fnErr, err error) {
	wasOpen := inc.Open()
	if fnErr = fn(inc); fnErr != nil {
		return false, fnErr, nil
	}
	if inc.ID != FormatID(seq) {
		return false, nil, fmt.Errorf("incident id changed to %q", inc.ID)
	}
	inc.UpdatedAt = now
	switch {
	case wasOpen && !inc.Open():
		if inc.ClosedAt == nil {
			inc.ClosedAt = &now
		}
		return true, nil, nil
	case !wasOpen && inc.Open():
		return false, nil, fmt.Errorf("reopen closed incident: %w", ErrConflict)
	}
	return false, nil, nil
}
