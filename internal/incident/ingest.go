package incident

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
)

// Delivery is one alert of one webhook notification, routed to its (cluster, alertname).
type Delivery struct {
	Cluster   string
	Alertname string
	Known     bool // the cluster is in the configuration
	Truncated int  // the notification's truncatedAlerts, counted once per incident it touches
	Alert     AlertRecord
	// Notes say what Ingest changed to journal the delivery (a label value too long for a key,
	// cut to config.MaxNameBytes); Ingest sets them and adds them to the incident's timeline.
	Notes []string
	// MaxAlerts is the most distinct alerts the incident it attaches to keeps (the receiver's
	// webhook.max_alerts_per_incident, or max_alerts_per_unknown_cluster when !Known); 0 is
	// DefaultMaxAlerts or DefaultMaxAlertsUnknownCluster. Past it a new alert is not stored: it
	// is counted in the incident's DroppedAlerts.
	MaxAlerts int
}

// Defaults of Delivery.MaxAlerts. An unknown cluster's incident is evidence of a routing
// mistake, not something the runbook reads: a few alerts show the mistake, and anyone who can
// post to the webhook must not be able to grow it without bound.
const (
	DefaultMaxAlerts               = 1000
	DefaultMaxAlertsUnknownCluster = 100
)

// maxAlerts is the cap that applies to d.
func (d *Delivery) maxAlerts() int {
	switch {
	case d.MaxAlerts > 0:
		return d.MaxAlerts
	case d.Known:
		return DefaultMaxAlerts
	}
	return DefaultMaxAlertsUnknownCluster
}

// IngestResult says which incident a delivery attached to.
type IngestResult struct {
	IncidentID string
	Created    bool
	// Open is whether the incident is open after the ingest: only open incidents have work for
	// the runbook engine (an unknown cluster's, or a resolution attached to a closed one, do not).
	Open bool
	// Dropped says the alert was not stored: the incident already held its MaxAlerts alerts.
	// The delivery is counted in the incident's DroppedAlerts.
	Dropped bool
}

// group is the (cluster, alertname) an incident belongs to: at most one open incident each.
type group struct{ cluster, alertname string }

// alertID names one stored alert: the same (fingerprint, startsAt, status) delivered again is
// the same alert, counted.
type alertID struct {
	fingerprint string
	startsAt    time.Time
	status      string
}

// ingestTxn is one transaction of a store as the ingest algorithm sees it: the bbolt journal's
// read-write transaction, or the etcd store's read set and write set committed by one Txn. Its
// reads see its own writes. Errors are the store's; the algorithm returns them as they are.
type ingestTxn interface {
	// openSeq and latestSeq are the group's open incident and its newest one.
	openSeq(g group) (seq uint64, ok bool, err error)
	latestSeq(g group) (seq uint64, ok bool, err error)
	setOpen(g group, seq uint64) error
	setLatest(g group, seq uint64) error
	// nextSeq allocates the sequence of a new incident.
	nextSeq() (uint64, error)
	// meta is what ingest needs to know of an incident; ok is false when none is stored (a
	// record written before metas existed).
	meta(seq uint64) (m incidentMeta, ok bool, err error)
	// record is the incident without its alerts; putRecord stores it and its meta.
	record(seq uint64) (*Incident, error)
	putRecord(seq uint64, inc *Incident) error
	// alert is the stored value of one alert, nil when there is none.
	alert(seq uint64, id alertID) ([]byte, error)
	putAlert(seq uint64, id alertID, v []byte) error
	// alertIDs lists every alert of the incident.
	alertIDs(seq uint64) ([]alertID, error)
	// counts is the incident's alert counts; ok is false when none are stored (an incident
	// written before counts existed). putCounts stores them.
	counts(seq uint64) (c alertCounts, ok bool, err error)
	putCounts(seq uint64, c alertCounts) error
}

// alertCounts are an incident's distinct alerts stored and alert deliveries dropped by the cap,
// kept under their own key so that ingest does not decode the record to count.
type alertCounts struct {
	stored, dropped uint64
}

// encode is the stored value: both counts, big-endian.
func (c alertCounts) encode() []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(make([]byte, 0, 16), c.stored), c.dropped)
}

func decodeCounts(v []byte) (alertCounts, error) {
	if len(v) != 16 {
		return alertCounts{}, fmt.Errorf("alert counts of %d bytes: want 16", len(v))
	}
	return alertCounts{binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:])}, nil
}

// storedCounts is ingestTxn.counts of a stored value v of incident seq (nil: none stored).
func storedCounts(seq uint64, v []byte) (alertCounts, bool, error) {
	if v == nil {
		return alertCounts{}, false, nil
	}
	c, err := decodeCounts(v)
	if err != nil {
		return c, false, fmt.Errorf("incident %s: %w", FormatID(seq), err)
	}
	return c, true, nil
}

// touched is an incident an ingest transaction attaches alerts to. Its record is decoded only
// when it must change (created, truncated count, resolution): a plain delivery reads one byte of
// meta and writes its alert, however large the record has grown with evidence and commands.
type touched struct {
	seq       uint64
	meta      incidentMeta
	inc       *Incident    // nil until needed
	dirty     bool         // inc must be written back
	added     bool         // a new alert was stored in this transaction
	resolved  bool         // a resolved alert arrived in this transaction
	truncated bool         // this transaction already added the notification's truncatedAlerts
	noted     bool         // this transaction already noted a cut name (one note per incident)
	counts    *alertCounts // nil until needed
	counted   bool         // counts changed: write them back
}

// alertCounts returns the incident's counts, read once per transaction; an incident stored
// before counts existed has its alerts counted.
func (t *touched) alertCounts(tx ingestTxn) (*alertCounts, error) {
	if t.counts != nil {
		return t.counts, nil
	}
	c, ok, err := tx.counts(t.seq)
	if err != nil {
		return nil, err
	}
	if !ok {
		ids, err := tx.alertIDs(t.seq)
		if err != nil {
			return nil, err
		}
		c = alertCounts{stored: uint64(len(ids))}
	}
	t.counts = &c
	return t.counts, nil
}

// full decodes the incident record.
func (t *touched) full(tx ingestTxn) (*Incident, error) {
	if t.inc == nil {
		inc, err := tx.record(t.seq)
		if err != nil {
			return nil, err
		}
		t.inc = inc
	}
	return t.inc, nil
}

// ingest is the one ingest algorithm of every store: a firing alert attaches to the open
// incident of its (cluster, alertname) or opens one; a resolved alert attaches to the open one,
// or the latest one, and sets ResolvedAt once every alert of the incident is resolved; an
// unknown cluster's alerts go to an incident opened and closed at once with
// OutcomeUnknownCluster (reused while it is that cluster's latest). The same (fingerprint,
// startsAt, status) delivered again only bumps its Deliveries and LastSeen. A cluster,
// alertname or fingerprint longer than config.MaxNameBytes was cut to fit by
// prepareDeliveries, and the cut is noted in the incident's timeline when the alert is new: such
// a value is a permanent input error that a retry cannot fix, and the alert is kept rather than
// refused. An incident stores at most a delivery's MaxAlerts distinct alerts: a new alert past
// that is counted, not stored (admit). Results are in the order of ds. ds must have passed
// prepareDeliveries.
func ingest(tx ingestTxn, ds []Delivery, now time.Time) ([]IngestResult, error) {
	cache := map[uint64]*touched{}
	var order []*touched

	load := func(seq uint64) (*touched, error) {
		if t, ok := cache[seq]; ok {
			return t, nil
		}
		t := &touched{seq: seq}
		m, ok, err := tx.meta(seq)
		if err != nil {
			return nil, err
		}
		if ok {
			t.meta = m
		} else {
			inc, err := t.full(tx) // written before meta existed
			if err != nil {
				return nil, err
			}
			t.meta = metaOf(inc)
		}
		cache[seq] = t
		order = append(order, t)
		return t, nil
	}
	create := func(d *Delivery, g group) (*touched, error) {
		seq, err := tx.nextSeq()
		if err != nil {
			return nil, fmt.Errorf("next incident id: %w", err)
		}
		inc := newIncident(seq, d, now)
		if inc.Open() {
			if err := tx.setOpen(g, seq); err != nil {
				return nil, err
			}
		}
		if err := tx.setLatest(g, seq); err != nil {
			return nil, err
		}
		t := &touched{seq: seq, inc: inc, meta: metaOf(inc), dirty: true, counts: &alertCounts{}}
		cache[seq] = t
		order = append(order, t)
		return t, nil
	}

	results := make([]IngestResult, len(ds))
	for i := range ds {
		d := &ds[i]
		g := group{d.Cluster, d.Alertname}
		var t *touched
		seq, ok, err := route(tx, d, g)
		if err != nil {
			return nil, err
		}
		if ok {
			if t, err = load(seq); err != nil {
				return nil, err
			}
			// An unknown cluster's alert joins only an unknown_cluster incident; if the cluster was
			// known when its latest incident opened, it starts a new one.
			ok = d.Known || t.meta&metaUnknownCluster != 0
		}
		if !ok {
			if t, err = create(d, g); err != nil {
				return nil, err
			}
		}
		id := alertID{d.Alert.Fingerprint, d.Alert.StartsAt, d.Alert.Status}
		old, err := tx.alert(t.seq, id)
		if err != nil {
			return nil, err
		}
		results[i] = IngestResult{IncidentID: FormatID(t.seq), Created: !ok, Open: t.meta&metaOpen != 0}
		if old == nil {
			keep, err := t.admit(tx, d, id, now)
			if err != nil {
				return nil, err
			}
			results[i].Dropped = !keep
		}
		if d.Truncated > 0 && !t.truncated {
			inc, err := t.full(tx)
			if err != nil {
				return nil, err
			}
			inc.TruncatedAlerts += d.Truncated
			t.truncated, t.dirty = true, true
		}
		if results[i].Dropped {
			continue
		}
		v, err := nextAlertValue(old, &d.Alert, now)
		if err != nil {
			return nil, fmt.Errorf("alert record of %s: %w", FormatID(t.seq), err)
		}
		if err := tx.putAlert(t.seq, id, v); err != nil {
			return nil, err
		}
		t.added = t.added || old == nil
		if d.Alert.Status == string(model.AlertResolved) {
			t.resolved = true
		}
		if len(d.Notes) > 0 && old == nil && !t.noted { // a resend was noted when it was new
			inc, err := t.full(tx)
			if err != nil {
				return nil, err
			}
			for _, n := range d.Notes {
				inc.Timeline = append(inc.Timeline, Event{At: now, Step: inc.Step, Message: n})
			}
			t.noted, t.dirty = true, true
		}
	}

	for _, t := range order {
		// Whether every alert is resolved changes only with the set of alerts, which a repeat
		// leaves as it is; and only a resolved alert can make every alert resolved, only a firing
		// one undo a recorded resolution: skip the scan (a listing of every alert) otherwise.
		if t.added && (t.resolved || t.meta&metaResolved != 0) {
			ids, err := tx.alertIDs(t.seq)
			if err != nil {
				return nil, err
			}
			all := allResolved(ids)
			if all != (t.meta&metaResolved != 0) || (t.inc != nil && all != (t.inc.ResolvedAt != nil)) {
				inc, err := t.full(tx)
				if err != nil {
					return nil, err
				}
				resolve(inc, all, now)
				t.dirty = true
			}
		}
		if t.counted {
			if err := tx.putCounts(t.seq, *t.counts); err != nil {
				return nil, err
			}
		}
		if t.dirty {
			t.inc.UpdatedAt = now
			if err := tx.putRecord(t.seq, t.inc); err != nil {
				return nil, err
			}
		}
	}
	return results, nil
}

// admit decides whether a new alert (one the incident does not hold) is stored: yes while the
// incident holds fewer than d's MaxAlerts alerts, and, past that, for the resolution of an alert
// it holds firing (at most one per stored alert, so the incident stays within twice the cap and
// still learns that its alerts resolved). A dropped delivery is counted; the first one is noted
// in the timeline.
func (t *touched) admit(tx ingestTxn, d *Delivery, id alertID, now time.Time) (bool, error) {
	c, err := t.alertCounts(tx)
	if err != nil {
		return false, err
	}
	limit := uint64(d.maxAlerts())
	keep := c.stored < limit
	if !keep && id.status == string(model.AlertResolved) {
		fired, err := tx.alert(t.seq, alertID{id.fingerprint, id.startsAt, string(model.AlertFiring)})
		if err != nil {
			return false, err
		}
		keep = fired != nil
	}
	t.counted = true
	if keep {
		c.stored++
		return true, nil
	}
	if c.dropped == 0 {
		inc, err := t.full(tx)
		if err != nil {
			return false, err
		}
		inc.Timeline = append(inc.Timeline, Event{At: now, Step: inc.Step, Message: fmt.Sprintf(
			"the incident holds %d alerts, the most it keeps (webhook.max_alerts_per_incident, or max_alerts_per_unknown_cluster for an unknown cluster): further new alerts are counted in dropped_alerts, not stored", c.stored)})
		t.dirty = true
	}
	c.dropped++
	return false, nil
}

// startIngest checks and completes the deliveries of an Ingest call before any store sees them
// (see prepareDeliveries); false says there is nothing to do.
func startIngest(ctx context.Context, ds []Delivery) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("ingest: %w", err)
	}
	if err := prepareDeliveries(ds); err != nil {
		return false, fmt.Errorf("ingest %d alerts: %w", len(ds), err)
	}
	return len(ds) > 0, nil
}

// prepareDeliveries checks and completes deliveries before any store sees them, so that a bad
// one fails its own call only, never a group commit it would have shared.
func prepareDeliveries(ds []Delivery) error {
	for i := range ds {
		ds[i].fitNames()
		a := &ds[i].Alert
		if a.Fingerprint == "" {
			// Alertmanager always sends one; other senders get the same label-set fingerprint.
			a.Fingerprint = model.LabelSet(toLabelSet(a.Labels)).Fingerprint().String()
		}
		for _, t := range []time.Time{a.StartsAt, a.EndsAt} {
			if y := t.Year(); y < 0 || y > 9999 {
				return fmt.Errorf("alert %s: time %s outside years 0-9999", a.Fingerprint, t)
			}
		}
	}
	return nil
}

// resolve records that every alert of the incident is resolved, or that one fires again.
func resolve(inc *Incident, all bool, now time.Time) {
	switch {
	case all && inc.ResolvedAt == nil:
		at := now
		inc.ResolvedAt = &at
		inc.Timeline = append(inc.Timeline, Event{At: now, Step: inc.Step, Message: "every alert of the incident is resolved"})
	case !all && inc.ResolvedAt != nil:
		inc.ResolvedAt = nil
		inc.Timeline = append(inc.Timeline, Event{At: now, Step: inc.Step, Message: "an alert of the incident is firing again"})
	}
}

// incidentMeta is what ingest needs to know of an incident, kept beside its record so that a
// delivery does not decode the record: a bit set, one byte.
type incidentMeta byte

const (
	metaOpen incidentMeta = 1 << iota
	metaUnknownCluster
	metaResolved
)

// storedMeta decodes a stored meta value; false when there is none (or not one byte).
func storedMeta(v []byte) (incidentMeta, bool) {
	if len(v) != 1 {
		return 0, false
	}
	return incidentMeta(v[0]), true
}

func metaOf(inc *Incident) incidentMeta {
	var m incidentMeta
	if inc.Open() {
		m |= metaOpen
	}
	if inc.Outcome == OutcomeUnknownCluster {
		m |= metaUnknownCluster
	}
	if inc.ResolvedAt != nil {
		m |= metaResolved
	}
	return m
}

// route finds the incident a delivery belongs to: the open one of its group, else for resolved
// alerts and unknown clusters the group's latest one.
func route(tx ingestTxn, d *Delivery, g group) (uint64, bool, error) {
	if d.Known {
		seq, ok, err := tx.openSeq(g)
		if err != nil || ok {
			return seq, ok, err
		}
		if d.Alert.Status != string(model.AlertResolved) {
			return 0, false, nil
		}
	}
	return tx.latestSeq(g)
}

func newIncident(seq uint64, d *Delivery, now time.Time) *Incident {
	inc := &Incident{
		ID:            FormatID(seq),
		Cluster:       d.Cluster,
		Alertname:     d.Alertname,
		Step:          StepReceived,
		StepEnteredAt: now,
		OpenedAt:      now,
		UpdatedAt:     now,
		Timeline: []Event{{At: now, Step: StepReceived, Message: fmt.Sprintf(
			"opened by %s alert %s from %s (group %s)", d.Alert.Status, d.Alert.Fingerprint, d.Alert.ExternalURL, d.Alert.GroupKey)}},
	}
	closeWith := func(o Outcome, reason string) {
		at := now
		inc.Step, inc.Outcome, inc.Reason, inc.ClosedAt = StepClosed, o, reason, &at
		inc.Timeline = append(inc.Timeline, Event{At: now, Step: StepClosed, Message: reason})
	}
	switch {
	case !d.Known:
		closeWith(OutcomeUnknownCluster, fmt.Sprintf("cluster %q is not in the configuration: alert journaled, nothing done", d.Cluster))
	case d.Alert.Status == string(model.AlertResolved):
		closeWith(OutcomeSelfHealed, "resolved notification for an alert this journal never saw firing: nothing to do")
	}
	return inc
}

// An alert value is a version byte, the delivery count and the last delivery time (unix ns),
// then the record as JSON; the header wins over the JSON's deliveries and last_seen. A repeat
// only rewrites the header, without decoding or re-encoding the record.
const (
	alertValueVersion = 1
	alertHeader       = 1 + 8 + 8
)

// nextAlertValue is the value of an alert after one more delivery: old with its counters bumped,
// or, when old is nil, the first record of the alert.
func nextAlertValue(old []byte, a *AlertRecord, now time.Time) ([]byte, error) {
	if old != nil {
		if len(old) < alertHeader || old[0] != alertValueVersion {
			return nil, errors.New("unknown format")
		}
		// A copy, never the stored bytes (bbolt wants them valid until commit).
		nv := append(make([]byte, 0, len(old)), old...)
		binary.BigEndian.PutUint64(nv[1:9], binary.BigEndian.Uint64(nv[1:9])+1)
		binary.BigEndian.PutUint64(nv[9:17], uint64(now.UnixNano()))
		return nv, nil
	}
	rec := *a
	rec.ReceivedAt, rec.LastSeen, rec.Deliveries = now, now, 1
	if y := now.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("alert %s: time %s outside years 0-9999", rec.Fingerprint, now)
	}
	v := make([]byte, alertHeader, alertHeader+512)
	v[0] = alertValueVersion
	binary.BigEndian.PutUint64(v[1:9], 1)
	binary.BigEndian.PutUint64(v[9:17], uint64(now.UnixNano()))
	return appendAlertJSON(v, &rec), nil
}

func decodeAlert(v []byte) (AlertRecord, error) {
	var a AlertRecord
	if len(v) < alertHeader || v[0] != alertValueVersion {
		return a, errors.New("unknown alert record format")
	}
	if err := json.Unmarshal(v[alertHeader:], &a); err != nil {
		return a, err
	}
	a.Deliveries = int(binary.BigEndian.Uint64(v[1:9]))
	a.LastSeen = time.Unix(0, int64(binary.BigEndian.Uint64(v[9:17]))).In(a.ReceivedAt.Location())
	return a, nil
}

// allResolved reports whether the latest record (by startsAt, then firing before resolved) of
// every fingerprint is resolved.
func allResolved(ids []alertID) bool {
	latest := make(map[string]alertID, len(ids))
	for _, id := range ids {
		cur, ok := latest[id.fingerprint]
		if !ok || id.startsAt.After(cur.startsAt) || (id.startsAt.Equal(cur.startsAt) && id.status > cur.status) {
			latest[id.fingerprint] = id
		}
	}
	for _, id := range latest {
		if id.status != string(model.AlertResolved) {
			return false
		}
	}
	return len(latest) > 0
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}
