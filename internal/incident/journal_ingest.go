package incident

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	bolt "go.etcd.io/bbolt"
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
}

// IngestResult says which incident a delivery attached to.
type IngestResult struct {
	IncidentID string
	Created    bool
	// Open is whether the incident is open after the ingest: only open incidents have work for
	// the runbook engine (an unknown cluster's, or a resolution attached to a closed one, do not).
	Open bool
}

// Ingest durably records deliveries (fsync; concurrent calls share one commit through bbolt's
// Batch). A firing alert attaches to the open incident of its (cluster, alertname) or opens one;
// a resolved alert attaches to the open one, or the latest one, and sets ResolvedAt once every
// alert of the incident is resolved; an unknown cluster's alerts go to an incident opened and
// closed at once with OutcomeUnknownCluster (reused while it is that cluster's latest). The same
// (fingerprint, startsAt, status) delivered again only bumps its Deliveries and LastSeen.
// A cluster, alertname or fingerprint longer than config.MaxNameBytes is cut to fit, in ds
// itself, and the cut is noted in d.Notes and the incident's timeline: such a value is a
// permanent input error that a retry cannot fix, and the alert is kept rather than refused.
// Results are in the order of ds. Ingest returns only after the data is on disk.
func (j *Journal) Ingest(ctx context.Context, ds []Delivery) ([]IngestResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if len(ds) == 0 {
		return nil, nil
	}
	for i := range ds {
		ds[i].fitNames()
	}
	now := j.now()
	var results []IngestResult
	defer j.observe(time.Now())
	fn := func(tx *bolt.Tx) error {
		// Batch may run this function again after a failed shared commit; start from scratch.
		var err error
		results, err = ingestTx(tx, ds, now)
		return err
	}
	// Group commit: concurrent ingests join one bbolt Batch and share its fsync. A lone ingest
	// commits at once instead of waiting BatchDelay for company that is not coming.
	// A write in progress is not abandoned on ctx cancellation: its outcome would be unknown.
	var err error
	if j.ingesting.Add(1) == 1 {
		err = j.db.Update(fn)
	} else {
		err = j.db.Batch(fn)
	}
	j.ingesting.Add(-1)
	if err != nil {
		return nil, fmt.Errorf("ingest %d alerts: %w", len(ds), err)
	}
	return results, nil
}

// touched is an incident an ingest transaction attaches alerts to. Its record is decoded only
// when it must change (created, truncated count, resolution): a plain delivery reads one byte of
// meta and writes its alert, however large the record has grown with evidence and commands.
type touched struct {
	seq       uint64
	meta      incidentMeta
	inc       *Incident // nil until needed
	dirty     bool      // inc must be written back
	resolved  bool      // a resolved alert arrived in this transaction
	truncated bool      // this transaction already added the notification's truncatedAlerts
	noted     bool      // this transaction already noted a cut name (one note per incident)
}

// full decodes the incident record.
func (t *touched) full(incs *bolt.Bucket) (*Incident, error) {
	if t.inc == nil {
		inc, err := getIncident(incs, t.seq)
		if err != nil {
			return nil, err
		}
		t.inc = inc
	}
	return t.inc, nil
}

func ingestTx(tx *bolt.Tx, ds []Delivery, now time.Time) ([]IngestResult, error) {
	incs, alerts, metas := tx.Bucket(bucketIncidents), tx.Bucket(bucketAlerts), tx.Bucket(bucketMeta)
	// These buckets are keyed by the incident sequence, so new data lands at their end: full
	// pages (the default 0.5 suits random inserts) halve what each commit writes and fsyncs.
	incs.FillPercent, alerts.FillPercent, metas.FillPercent = 0.9, 0.9, 0.9
	open, latest := tx.Bucket(bucketOpen), tx.Bucket(bucketLatest)
	cache := map[uint64]*touched{}
	var order []*touched

	load := func(seq uint64) (*touched, error) {
		if t, ok := cache[seq]; ok {
			return t, nil
		}
		t := &touched{seq: seq}
		if m := metas.Get(seqKey(seq)); len(m) == 1 {
			t.meta = incidentMeta(m[0])
		} else {
			inc, err := t.full(incs) // written before meta existed
			if err != nil {
				return nil, err
			}
			t.meta = metaOf(inc)
		}
		cache[seq] = t
		order = append(order, t)
		return t, nil
	}
	create := func(d *Delivery, gk []byte) (*touched, error) {
		seq, err := incs.NextSequence()
		if err != nil {
			return nil, fmt.Errorf("next incident id: %w", err)
		}
		inc := newIncident(seq, d, now)
		if inc.Open() {
			if err := open.Put(gk, seqKey(seq)); err != nil {
				return nil, err
			}
		}
		if err := latest.Put(gk, seqKey(seq)); err != nil {
			return nil, err
		}
		t := &touched{seq: seq, inc: inc, meta: metaOf(inc), dirty: true}
		cache[seq] = t
		order = append(order, t)
		return t, nil
	}

	results := make([]IngestResult, len(ds))
	for i := range ds {
		d := &ds[i]
		if d.Alert.Fingerprint == "" {
			// Alertmanager always sends one; other senders get the same label-set fingerprint.
			d.Alert.Fingerprint = model.LabelSet(toLabelSet(d.Alert.Labels)).Fingerprint().String()
		}
		gk := groupKey(d.Cluster, d.Alertname)
		var t *touched
		seq, ok := route(open, latest, d, gk)
		if ok {
			var err error
			if t, err = load(seq); err != nil {
				return nil, err
			}
			// An unknown cluster's alert joins only an unknown_cluster incident; if the cluster was
			// known when its latest incident opened, it starts a new one.
			ok = d.Known || t.meta&metaUnknownCluster != 0
		}
		if !ok {
			var err error
			if t, err = create(d, gk); err != nil {
				return nil, err
			}
		}
		isNew, err := putAlert(alerts, t.seq, &d.Alert, now)
		if err != nil {
			return nil, err
		}
		if d.Alert.Status == string(model.AlertResolved) {
			t.resolved = true
		}
		if len(d.Notes) > 0 && isNew && !t.noted { // a resend was noted when it was new
			inc, err := t.full(incs)
			if err != nil {
				return nil, err
			}
			for _, n := range d.Notes {
				inc.Timeline = append(inc.Timeline, Event{At: now, Step: inc.Step, Message: n})
			}
			t.noted, t.dirty = true, true
		}
		if d.Truncated > 0 && !t.truncated {
			inc, err := t.full(incs)
			if err != nil {
				return nil, err
			}
			inc.TruncatedAlerts += d.Truncated
			t.truncated, t.dirty = true, true
		}
		results[i] = IngestResult{IncidentID: FormatID(t.seq), Created: !ok, Open: t.meta&metaOpen != 0}
	}

	for _, t := range order {
		// Only a resolved alert can make every alert resolved, and only a firing one can undo a
		// recorded resolution: skip the scan otherwise.
		if t.resolved || t.meta&metaResolved != 0 {
			all, err := allResolved(alerts, t.seq)
			if err != nil {
				return nil, err
			}
			if all != (t.meta&metaResolved != 0) || (t.inc != nil && all != (t.inc.ResolvedAt != nil)) {
				inc, err := t.full(incs)
				if err != nil {
					return nil, err
				}
				switch {
				case all && inc.ResolvedAt == nil:
					at := now
					inc.ResolvedAt = &at
					inc.Timeline = append(inc.Timeline, Event{At: now, Step: inc.Step, Message: "every alert of the incident is resolved"})
				case !all && inc.ResolvedAt != nil:
					inc.ResolvedAt = nil
					inc.Timeline = append(inc.Timeline, Event{At: now, Step: inc.Step, Message: "an alert of the incident is firing again"})
				}
				t.dirty = true
			}
		}
		if t.dirty {
			t.inc.UpdatedAt = now
			if err := putIncident(incs, metas, t.seq, t.inc); err != nil {
				return nil, err
			}
		}
	}
	return results, nil
}

// incidentMeta is what ingest needs to know of an incident, kept beside its record so that a
// delivery does not decode the record: a bit set, one byte.
type incidentMeta byte

const (
	metaOpen incidentMeta = 1 << iota
	metaUnknownCluster
	metaResolved
)

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
func route(open, latest *bolt.Bucket, d *Delivery, gk []byte) (uint64, bool) {
	if d.Known {
		if v := open.Get(gk); v != nil {
			return binary.BigEndian.Uint64(v), true
		}
		if d.Alert.Status != string(model.AlertResolved) {
			return 0, false
		}
	}
	if v := latest.Get(gk); v != nil {
		return binary.BigEndian.Uint64(v), true
	}
	return 0, false
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

// putAlert stores the alert once per (fingerprint, startsAt, status); a repeat only bumps the
// counters in the value's header, without decoding or re-encoding the record. isNew says the
// alert was stored for the first time.
func putAlert(b *bolt.Bucket, seq uint64, a *AlertRecord, now time.Time) (isNew bool, err error) {
	k := alertKey(seq, a.Fingerprint, a.StartsAt, a.Status)
	if v := b.Get(k); v != nil {
		if len(v) < alertHeader || v[0] != alertValueVersion {
			return false, fmt.Errorf("alert record of %s: unknown format", FormatID(seq))
		}
		// bbolt wants the value to stay valid until commit: a copy, never the page itself.
		nv := append(make([]byte, 0, len(v)), v...)
		binary.BigEndian.PutUint64(nv[1:9], binary.BigEndian.Uint64(nv[1:9])+1)
		binary.BigEndian.PutUint64(nv[9:17], uint64(now.UnixNano()))
		return false, b.Put(k, nv)
	}
	rec := *a
	rec.ReceivedAt, rec.LastSeen, rec.Deliveries = now, now, 1
	for _, t := range []time.Time{rec.StartsAt, rec.EndsAt, rec.ReceivedAt} {
		if y := t.Year(); y < 0 || y > 9999 {
			return false, fmt.Errorf("alert %s: time %s outside years 0-9999", rec.Fingerprint, t)
		}
	}
	v := make([]byte, alertHeader, alertHeader+512)
	v[0] = alertValueVersion
	binary.BigEndian.PutUint64(v[1:9], 1)
	binary.BigEndian.PutUint64(v[9:17], uint64(now.UnixNano()))
	return true, b.Put(k, appendAlertJSON(v, &rec))
}

// An alert value is a version byte, the delivery count and the last delivery time (unix ns),
// then the record as JSON; the header wins over the JSON's deliveries and last_seen.
const (
	alertValueVersion = 1
	alertHeader       = 1 + 8 + 8
)

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

// allResolved reports whether the latest record of every fingerprint of the incident is resolved.
func allResolved(b *bolt.Bucket, seq uint64) (bool, error) {
	prefix := seqKey(seq)
	c := b.Cursor()
	var lastFP string
	var lastStatusResolved, any bool
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		fp := alertKeyFingerprint(k)
		if any && fp != lastFP && !lastStatusResolved {
			return false, nil
		}
		lastFP, any = fp, true
		lastStatusResolved = bytes.HasSuffix(k, []byte(model.AlertResolved))
	}
	return any && lastStatusResolved, nil
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}
