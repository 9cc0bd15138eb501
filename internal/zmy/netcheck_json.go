package zmy

import (
	"strconv"
)

// decodeNetcheckJSON decodes the JSON form of `debug netcheck --full` without reflection. It is
// the responder's largest piece of work per node and round with the admin API driver: the answer
// lists every peer, so a 200-node round decodes 40,000 peer objects (≈ 4 MB), and encoding/json
// took a third of the responder's CPU for it. ok is false for anything outside the plain shape
// nodes write (an unknown key, a null, an escaped or non-ASCII string, a repeated key, a wrong
// type): the caller then decodes with encoding/json, which also gives the error. When ok, the
// result equals what encoding/json decodes (FuzzParsers checks it).
func decodeNetcheckJSON(s string) (n *Netcheck, ok bool) {
	d := jsonScanner{s: s}
	n = &Netcheck{}
	var seen [3]bool
	ok = d.object(func(key string) bool {
		switch key {
		case "node":
			return d.once(&seen[0]) && d.str(&n.Node)
		case "peers":
			return d.once(&seen[1]) && d.peers(&n.Peers)
		case "partition_score":
			return d.once(&seen[2]) && d.num(&n.PartitionScore)
		}
		return false
	})
	d.space()
	return n, ok && d.i == len(s)
}

// jsonScanner reads the few JSON forms decodeNetcheckJSON accepts; every method reports
// false on anything else.
type jsonScanner struct {
	s string
	i int
}

func (d *jsonScanner) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// next skips space and consumes c.
func (d *jsonScanner) next(c byte) bool {
	d.space()
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *jsonScanner) once(seen *bool) bool {
	if *seen {
		return false
	}
	*seen = true
	return true
}

// object reads {"key": value, …}, handing each key to field, which reads the value.
func (d *jsonScanner) object(field func(key string) bool) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	for {
		var key string
		if !d.str(&key) || !d.next(':') || !field(key) {
			return false
		}
		if d.next(',') {
			continue
		}
		return d.next('}')
	}
}

// str reads a string of printable ASCII without escapes.
func (d *jsonScanner) str(into *string) bool {
	if !d.next('"') {
		return false
	}
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			*into = d.s[start:d.i]
			d.i++
			return true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return false
		}
		d.i++
	}
	return false
}

// num reads a number in JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *jsonScanner) num(into *float64) bool {
	d.space()
	start := d.i
	if d.i < len(d.s) && d.s[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.s) && d.s[d.i] == '0':
		d.i++
	case d.digits() == 0:
		return false
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return false
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return false
		}
	}
	f, err := strconv.ParseFloat(d.s[start:d.i], 64)
	*into = f
	return err == nil
}

func (d *jsonScanner) digits() int {
	start := d.i
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}

func (d *jsonScanner) boolean(into *bool) bool {
	d.space()
	switch {
	case len(d.s)-d.i >= 4 && d.s[d.i:d.i+4] == "true":
		*into, d.i = true, d.i+4
	case len(d.s)-d.i >= 5 && d.s[d.i:d.i+5] == "false":
		*into, d.i = false, d.i+5
	default:
		return false
	}
	return true
}

// peers reads the array of peer objects.
func (d *jsonScanner) peers(into *[]PeerCheck) bool {
	if !d.next('[') {
		return false
	}
	// An upper bound on the elements, so the slice is allocated once: each takes a '{'.
	n := 0
	for i := d.i; i < len(d.s) && d.s[i] != ']'; i++ {
		if d.s[i] == '{' {
			n++
		}
	}
	out := make([]PeerCheck, 0, n)
	if d.next(']') {
		*into = out
		return true
	}
	for {
		var p PeerCheck
		var seen [5]bool
		if !d.object(func(key string) bool {
			switch key {
			case "peer":
				return d.once(&seen[0]) && d.str(&p.Peer)
			case "addr":
				return d.once(&seen[1]) && d.str(&p.Addr)
			case "reachable":
				return d.once(&seen[2]) && d.boolean(&p.Reachable)
			case "rtt_ms":
				return d.once(&seen[3]) && d.num(&p.RTTMillis)
			case "firewall_blocked":
				return d.once(&seen[4]) && d.boolean(&p.FirewallBlocked)
			}
			return false
		}) {
			return false
		}
		out = append(out, p)
		if d.next(',') {
			continue
		}
		*into = out
		return d.next(']')
	}
}
