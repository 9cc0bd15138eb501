// Package docs holds the documents that are part of the product (the ZMY node contract) and the
// test that keeps every document of the repository standing on its own.
package docs

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/stretchr/testify/require"
)

// documents are the repository's documents, relative to the module root.
var documents = []string{
	"README.md", "ARCHITECTURE.md", "BENCHMARKS.md", "docs/node-contract.md",
	"rules/RUNBOOKS.md", "dashboards/README.md", "deploy/README.md",
}

// A reader of the repository has only the repository: no document may send them to a
// specification or a directory that is not in it, and every relative link must resolve.
func TestDocumentsStandOnTheirOwn(t *testing.T) {
	root := filepath.Join("..")
	outside := regexp.MustCompile(`SPEC(\.md| §)|\.\./shared`)
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, doc := range documents {
		b, err := os.ReadFile(filepath.Join(root, doc))
		require.NoError(t, err)
		text := string(b)
		for i, line := range strings.Split(text, "\n") {
			require.Falsef(t, outside.MatchString(line), "%s:%d cites a document outside the repository: %s", doc, i+1, line)
		}
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			_, err := os.Stat(filepath.Join(root, filepath.Dir(doc), target))
			require.NoErrorf(t, err, "%s links to %s, which is not in the repository", doc, target)
		}
	}
	for _, f := range []string{"LICENSE", "docs/node-contract.md"} {
		_, err := os.Stat(filepath.Join(root, f))
		require.NoError(t, err)
	}
	lic, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	require.NoError(t, err)
	require.Contains(t, string(lic), "Apache License\n                           Version 2.0")
}

// The README's quickstart posts docs/quickstart-webhook.json: it must be what Alertmanager sends
// for ZMY_Quorum_Down on the quickstart's cluster, "demo".
func TestQuickstartWebhook(t *testing.T) {
	b, err := os.ReadFile("quickstart-webhook.json")
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var msg webhook.Message
	require.NoError(t, dec.Decode(&msg))
	require.Equal(t, "4", msg.Version)
	require.Len(t, msg.Alerts, 1)
	a := msg.Alerts[0]
	require.Equal(t, "firing", a.Status)
	require.Equal(t, "ZMY_Quorum_Down", a.Labels["alertname"])
	require.Equal(t, "demo", a.Labels["cluster"])
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), "-d @docs/quickstart-webhook.json")
	require.Contains(t, string(readme), "bin/zmysim run --cluster demo ")
}
