package incident

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAppendAlertJSON: the hand-written encoder must decode back, through encoding/json, to the
// record it encoded, whatever the strings hold.
func TestAppendAlertJSON(t *testing.T) {
	zone := time.FixedZone("UTC+8", 8*3600)
	for _, s := range []string{
		"", "plain", `quote " and backslash \`, "new\nline\ttab\rcr", "\x00\x01\x1f\x7f",
		"中文 SOP-ZMY-001", "\u2028\u2029", "bad utf8 \xff\xfe end", "<script>&amp;</script>",
	} {
		rec := AlertRecord{
			GroupKey: s, Receiver: s, ExternalURL: s, Fingerprint: s, Status: "firing",
			Labels:   map[string]string{s: s, "alertname": "ZMY_Quorum_Down"},
			StartsAt: time.Date(2025, 3, 1, 12, 0, 0, 123456789, zone), EndsAt: time.Time{},
			ReceivedAt: time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC), Deliveries: 42,
			LastSeen: time.Date(2025, 3, 1, 13, 0, 0, 5, time.UTC),
		}
		var got AlertRecord
		require.NoError(t, json.Unmarshal(appendAlertJSON(nil, &rec), &got), "%q", s)

		var want AlertRecord
		// encoding/json's own round trip is the reference (it replaces invalid UTF-8 too).
		ref, err := json.Marshal(&rec)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(ref, &want))
		require.Equal(t, want, got, "%q", s)
	}
	var got AlertRecord
	require.NoError(t, json.Unmarshal(appendAlertJSON(nil, &AlertRecord{}), &got))
	require.Nil(t, got.Labels)
}
