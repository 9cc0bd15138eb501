package incident

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendAlertJSON encodes an AlertRecord exactly as encoding/json would decode it back, without
// reflection: a 10,000-alert notification is 10,000 of these inside one commit, and reflection
// was a third of that commit's CPU. The field names are AlertRecord's json tags.
func appendAlertJSON(b []byte, a *AlertRecord) []byte {
	b = append(b, `{"group_key":`...)
	b = appendString(b, a.GroupKey)
	b = append(b, `,"receiver":`...)
	b = appendString(b, a.Receiver)
	b = append(b, `,"external_url":`...)
	b = appendString(b, a.ExternalURL)
	b = append(b, `,"fingerprint":`...)
	b = appendString(b, a.Fingerprint)
	b = append(b, `,"status":`...)
	b = appendString(b, a.Status)
	b = append(b, `,"labels":`...)
	if a.Labels == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		first := true
		for k, v := range a.Labels {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, v)
		}
		b = append(b, '}')
	}
	b = append(b, `,"starts_at":`...)
	b = appendTime(b, a.StartsAt)
	b = append(b, `,"ends_at":`...)
	b = appendTime(b, a.EndsAt)
	b = append(b, `,"received_at":`...)
	b = appendTime(b, a.ReceivedAt)
	b = append(b, `,"deliveries":`...)
	b = strconv.AppendInt(b, int64(a.Deliveries), 10)
	b = append(b, `,"last_seen":`...)
	b = appendTime(b, a.LastSeen)
	return append(b, '}')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON; encoding/json escapes them only for JavaScript.
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
