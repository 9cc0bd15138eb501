package simctl

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

func TestExitCodesMatchTheContract(t *testing.T) {
	require.Equal(t, zmy.ExitError, exitError)
	require.Equal(t, zmy.ExitUsage, exitUsage)
	require.Equal(t, zmy.ExitUnreachable, exitUnreachable)
}

func TestMainForwardsWordsAndFlags(t *testing.T) {
	var got Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/admin/v1/exec", r.URL.Path)
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		_ = json.NewEncoder(w).Encode(Response{Exit: 4, Stdout: "out\n", Stderr: "err\n"})
	}))
	defer srv.Close()
	for _, args := range [][]string{
		{"--endpoint", srv.URL, "-o", "json", "quorum", "recover", "--auto"},
		{"quorum", "recover", "--auto", "--endpoint=" + srv.URL, "--output=json"},
	} {
		var out, errb bytes.Buffer
		code := Main(t.Context(), args, &out, &errb)
		require.Equal(t, 4, code)
		require.Equal(t, "out\n", out.String())
		require.Equal(t, "err\n", errb.String())
		require.Equal(t, []string{"quorum", "recover", "--auto", "-o", "json"}, got.Args)
	}
}

func TestMainErrors(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, exitUsage, Main(t.Context(), []string{"status"}, &out, &errb), "no endpoint")
	require.Equal(t, exitUsage, Main(t.Context(), []string{"--endpoint"}, &out, &errb), "flag without value")
	require.Equal(t, exitUsage, Main(t.Context(), []string{"--endpoint", "http://127.0.0.1:1"}, &out, &errb), "no command")
	errb.Reset()
	require.Equal(t, exitUnreachable, Main(t.Context(), []string{"--endpoint", "http://127.0.0.1:1", "status"}, &out, &errb))
	require.Contains(t, errb.String(), "node unreachable")

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(ErrorResponse{Error: "injected failure"})
	}))
	defer srv.Close()
	errb.Reset()
	require.Equal(t, exitError, Main(t.Context(), []string{"--endpoint", srv.URL, "status"}, &out, &errb))
	require.Contains(t, errb.String(), "injected failure")
}
