package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWebGrafanaURL(t *testing.T) {
	cfg, err := LoadBytes([]byte("web: {grafana_url: \"https://grafana.example.com/\"}"))
	require.NoError(t, err)
	require.Equal(t, "https://grafana.example.com/", cfg.Web.GrafanaURL)

	_, err = LoadBytes([]byte("web:\n  grafana_url: grafana.example.com\n"))
	require.ErrorContains(t, err, `line 2: web.grafana_url: URL "grafana.example.com" must be http:// or https://`)
}
