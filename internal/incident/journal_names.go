package incident

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// fitNames cuts the delivery's cluster, alertname and fingerprint to config.MaxNameBytes: they
// are part of the journal's keys, and a label value too large for a key is a permanent input
// error that no retry fixes. The alert's labels keep the full values; each cut is described in
// d.Notes (and then in the incident's timeline). Idempotent: a cut value fits.
func (d *Delivery) fitNames() {
	fit := func(what string, v *string) bool {
		cut, ok := fitName(*v)
		if !ok {
			return false
		}
		d.Notes = append(d.Notes, fmt.Sprintf("alert %s: %s %q is %d bytes, over the %d-byte limit for names in the journal: journaled cut to its first %d bytes followed by %q (the alert's labels keep the full value)",
			shortForNote(d.Alert.Fingerprint), what, shortForNote(*v), len(*v), config.MaxNameBytes,
			strings.LastIndex(cut, markerStart), cut[strings.LastIndex(cut, markerStart):]))
		*v = cut
		return true
	}
	if fit("the cluster label", &d.Cluster) {
		// A configured name fits, so a cut one names no configured cluster (and the marker
		// fitName appends is not a valid cluster name anyway).
		d.Known = false
	}
	fit("the alertname label", &d.Alertname)
	fit("the fingerprint", &d.Alert.Fingerprint)
}

// markerStart begins what fitName appends to a cut value.
const markerStart = "…["

// fitName returns v unchanged when it fits config.MaxNameBytes, else a prefix of it followed by
// a marker with the original length and a hash of the whole value, so that two long values that
// share their first kilobyte still name two groups. The result is at most MaxNameBytes long
// and cut on a UTF-8 boundary.
func fitName(v string) (string, bool) {
	if len(v) <= config.MaxNameBytes {
		return v, false
	}
	sum := sha256.Sum256([]byte(v))
	marker := fmt.Sprintf("%s%d bytes, sha256 %x]", markerStart, len(v), sum[:8])
	n := config.MaxNameBytes - len(marker)
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n] + marker, true
}

// shortForNote keeps a value readable in a timeline message.
func shortForNote(v string) string {
	const keep = 64
	if len(v) <= keep {
		return v
	}
	n := keep
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n] + "…"
}
