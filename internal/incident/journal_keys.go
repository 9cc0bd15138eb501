package incident

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// idPrefix and the zero-padded sequence make IDs such as "inc-000042".
const idPrefix = "inc-"

// FormatID turns a journal sequence number into an incident ID.
func FormatID(seq uint64) string { return fmt.Sprintf("%s%06d", idPrefix, seq) }

// ParseID turns an incident ID back into its sequence number.
func ParseID(id string) (uint64, error) {
	n, ok := strings.CutPrefix(id, idPrefix)
	if !ok {
		return 0, fmt.Errorf("incident id %q: %w", id, ErrNotFound)
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("incident id %q: %w", id, ErrNotFound)
	}
	return seq, nil
}

// seqKey is a big-endian sequence: bbolt keeps keys sorted, so incidents are stored oldest first
// whatever the number of digits of the ID.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

// groupKey identifies (cluster, alertname); the length prefix makes it unambiguous whatever
// bytes the label values hold.
func groupKey(cluster, alertname string) []byte {
	k := binary.AppendUvarint(nil, uint64(len(cluster)))
	k = append(k, cluster...)
	return append(k, alertname...)
}

// alertKey orders an incident's alerts by fingerprint, then startsAt, then status ("firing" <
// "resolved"), so that the last key of each fingerprint is its current state.
func alertKey(seq uint64, fingerprint string, startsAt time.Time, status string) []byte {
	k := seqKey(seq)
	k = binary.AppendUvarint(k, uint64(len(fingerprint)))
	k = append(k, fingerprint...)
	// Seconds with the sign bit flipped sort correctly as unsigned, the zero time included.
	k = binary.BigEndian.AppendUint64(k, uint64(startsAt.Unix())^(1<<63))
	k = binary.BigEndian.AppendUint32(k, uint32(startsAt.Nanosecond()))
	return append(k, status...)
}

// parseAlertKey is alertKey's inverse, the sequence aside.
func parseAlertKey(k []byte) (alertID, bool) {
	if len(k) < 8 {
		return alertID{}, false
	}
	rest := k[8:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || uint64(len(rest)-w) < n+12 {
		return alertID{}, false
	}
	fp := string(rest[w : w+int(n)])
	rest = rest[w+int(n):]
	sec := int64(binary.BigEndian.Uint64(rest[:8]) ^ (1 << 63))
	nsec := int64(binary.BigEndian.Uint32(rest[8:12]))
	return alertID{fingerprint: fp, startsAt: time.Unix(sec, nsec), status: string(rest[12:])}, true
}
