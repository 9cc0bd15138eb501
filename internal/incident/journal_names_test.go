package incident

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
)

func TestFitName(t *testing.T) {
	fits := strings.Repeat("a", config.MaxNameBytes)
	got, cut := fitName(fits)
	require.False(t, cut)
	require.Equal(t, fits, got)

	for _, v := range []string{fits + "b", strings.Repeat("日本", 3000), strings.Repeat("x", 1<<20)} {
		got, cut := fitName(v)
		require.True(t, cut)
		require.LessOrEqual(t, len(got), config.MaxNameBytes)
		require.True(t, utf8.ValidString(got), "cut on a rune boundary")
		prefix, marker, ok := strings.Cut(got, markerStart)
		require.True(t, ok)
		require.True(t, strings.HasPrefix(v, prefix))
		require.Regexp(t, `^\d+ bytes, sha256 [0-9a-f]{16}\]$`, marker)
		again, cutAgain := fitName(got)
		require.False(t, cutAgain, "a cut value fits")
		require.Equal(t, got, again)
	}

	d := Delivery{Cluster: strings.Repeat("c", 5000), Alertname: "ZMY_Quorum_Down", Known: true,
		Alert: AlertRecord{Fingerprint: strings.Repeat("f", 2000)}}
	d.fitNames()
	require.False(t, d.Known, "a cut cluster name is never a configured cluster")
	require.Len(t, d.Notes, 2)
	require.Contains(t, d.Notes[0], "the cluster label")
	require.Contains(t, d.Notes[1], "the fingerprint")
	require.Equal(t, "ZMY_Quorum_Down", d.Alertname)
}
