package incident

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// An incident's record in etcd is a head and parts. The head is the record without its alerts
// (stored one per key, as in bbolt) and without the lists that grow with the cluster's size and
// the runbook's progress: the verdict's evidence (≈ 1 MB of JSON for 200 nodes), the commands
// and the timeline. Those are cut into parts of at most partTarget bytes of JSON, each stored
// compressed under the hash of its content: parts are immutable, an append rewrites only the
// last part of its list, and a part can be written before the head that names it, in its own
// request, so that no request carries a whole large record. etcd refuses requests over 1.5 MiB
// by default (--max-request-bytes).

// partTarget is the JSON size a part is filled to (one element bigger than that is a part alone).
const partTarget = 96 << 10

// Part formats: the first byte of a part's value.
const partDeflate = 1

// recordHead is the value of the head key.
type recordHead struct {
	// Core is the incident's JSON without alerts, evidence, commands and timeline.
	Core json.RawMessage `json:"core"`
	// Parts lists, per long list, the hashes of its parts in order. A list that is nil in the
	// record is absent; an empty one is present with no parts.
	Parts map[string][]string `json:"parts"`
}

// The long lists, by their name in recordHead.Parts.
const (
	listTimeline = "timeline"
	listCommands = "commands"
	listEvidence = "evidence"
)

// storedRecord is an incident's record as read from etcd: what a write must compare against and
// what it may delete.
type storedRecord struct {
	headRev int64           // mod revision of the head key
	meta    []byte          // the meta key's value, nil when absent
	parts   map[string]bool // hashes the head names
	// orphans are parts the head does not name and that were written before it: left by a
	// writer that lost a race or died between its parts and its head. Safe to delete with the
	// head unchanged (a writer that could still name them read an older head, and will fail).
	orphans []string
}

// encodedRecord is an incident ready to be written.
type encodedRecord struct {
	head  []byte
	meta  []byte
	parts map[string][]byte // hash → compressed part, every part the head names
}

// encodeRecord cuts inc (alerts aside) into a head and its parts.
func encodeRecord(inc *Incident) (*encodedRecord, error) {
	core := *inc
	core.Alerts, core.Timeline, core.Commands, core.DroppedAlerts = nil, nil, nil, 0
	if inc.Verdict != nil {
		v := *inc.Verdict
		v.Evidence = nil
		core.Verdict = &v
	}
	var err error
	h := recordHead{Parts: map[string][]string{}}
	if h.Core, err = json.Marshal(&core); err != nil {
		return nil, fmt.Errorf("encode incident %s: %w", inc.ID, err)
	}
	out := &encodedRecord{parts: map[string][]byte{}, meta: []byte{byte(metaOf(inc))}}
	err = addList(out, &h, listTimeline, inc.Timeline)
	if err == nil {
		err = addList(out, &h, listCommands, inc.Commands)
	}
	if err == nil && inc.Verdict != nil {
		err = addList(out, &h, listEvidence, inc.Verdict.Evidence)
	}
	if err != nil {
		return nil, fmt.Errorf("encode incident %s: %w", inc.ID, err)
	}
	if out.head, err = json.Marshal(&h); err != nil {
		return nil, fmt.Errorf("encode incident %s: %w", inc.ID, err)
	}
	return out, nil
}

// addList cuts list into parts, adds them to out and names them in h; a nil list is absent.
func addList[T any](out *encodedRecord, h *recordHead, name string, list []T) error {
	if list == nil {
		return nil
	}
	elems := make([][]byte, len(list))
	for i := range list {
		b, err := json.Marshal(&list[i])
		if err != nil {
			return err
		}
		elems[i] = b
	}
	hashes := []string{}
	for _, chunk := range chunkJSON(elems) {
		sum := sha256.Sum256(chunk)
		hash := hex.EncodeToString(sum[:16])
		if _, ok := out.parts[hash]; !ok {
			out.parts[hash] = deflate(chunk)
		}
		hashes = append(hashes, hash)
	}
	h.Parts[name] = hashes
	return nil
}

// loadList decodes the parts of a list; a list absent from the head is nil.
func loadList[T any](h *recordHead, name string, part func(hash string) ([]byte, bool)) ([]T, error) {
	hashes, ok := h.Parts[name]
	if !ok {
		return nil, nil
	}
	out := []T{}
	for _, hash := range hashes {
		v, ok := part(hash)
		if !ok {
			return nil, fmt.Errorf("%s part %s is missing", name, hash)
		}
		raw, err := inflate(v)
		if err != nil {
			return nil, fmt.Errorf("%s part %s: %w", name, hash, err)
		}
		var elems []T
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, fmt.Errorf("%s part %s: %w", name, hash, err)
		}
		out = append(out, elems...)
	}
	return out, nil
}

// chunkJSON groups consecutive elements into JSON arrays of about partTarget bytes. The cut is
// greedy from the first element, so appending to a list changes only its last part.
func chunkJSON(list [][]byte) [][]byte {
	var out [][]byte
	var cur []byte
	for _, e := range list {
		if len(cur) > 0 && len(cur)+len(e)+2 > partTarget {
			out = append(out, append(cur, ']'))
			cur = nil
		}
		if len(cur) == 0 {
			cur = append(make([]byte, 0, min(partTarget, len(e)*4)+2), '[')
		} else {
			cur = append(cur, ',')
		}
		cur = append(cur, e...)
	}
	if len(cur) > 0 {
		out = append(out, append(cur, ']'))
	}
	return out
}

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	buf.WriteByte(partDeflate)
	w, _ := flate.NewWriter(&buf, flate.BestSpeed) // only an invalid level fails
	_, _ = w.Write(b)                              // a bytes.Buffer does not fail
	_ = w.Close()
	return buf.Bytes()
}

func inflate(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != partDeflate {
		return nil, errors.New("unknown part format")
	}
	return io.ReadAll(flate.NewReader(bytes.NewReader(v[1:])))
}

// decodeRecord rebuilds an incident (alerts aside) from its head and the parts it names.
func decodeRecord(head []byte, part func(hash string) ([]byte, bool)) (*Incident, error) {
	var h recordHead
	if err := json.Unmarshal(head, &h); err != nil {
		return nil, fmt.Errorf("decode head: %w", err)
	}
	inc := &Incident{}
	if err := json.Unmarshal(h.Core, inc); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	var err error
	if inc.Timeline, err = loadList[Event](&h, listTimeline, part); err != nil {
		return nil, err
	}
	if inc.Commands, err = loadList[Command](&h, listCommands, part); err != nil {
		return nil, err
	}
	if inc.Verdict != nil {
		if inc.Verdict.Evidence, err = loadList[Evidence](&h, listEvidence, part); err != nil {
			return nil, err
		}
	}
	return inc, nil
}

// headParts returns the hashes a head names.
func headParts(head []byte) (map[string]bool, error) {
	var h recordHead
	if err := json.Unmarshal(head, &h); err != nil {
		return nil, fmt.Errorf("decode head: %w", err)
	}
	set := map[string]bool{}
	for _, hashes := range h.Parts {
		for _, hash := range hashes {
			set[hash] = true
		}
	}
	return set, nil
}

// recordChange is what writing rec over old takes: the parts to add (sorted by hash, so that
// requests are deterministic) and the parts to delete.
func recordChange(old *storedRecord, rec *encodedRecord) (add []string, drop []string) {
	for hash := range rec.parts {
		if old == nil || !old.parts[hash] {
			add = append(add, hash)
		}
	}
	if old != nil {
		for hash := range old.parts {
			if _, ok := rec.parts[hash]; !ok {
				drop = append(drop, hash)
			}
		}
		for _, hash := range old.orphans {
			if _, ok := rec.parts[hash]; !ok { // an orphan with the content of a new part is reused
				drop = append(drop, hash)
			}
		}
	}
	slices.Sort(add)
	slices.Sort(drop)
	return add, drop
}
