package simctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/zmy"
)

func TestExitCodesMatchTheContract(t *testing.T) {
	require.Equal(t, zmy.ExitError, exitError)
	require.Equal(t, zmy.ExitUsage, exitUsage)
	require.Equal(t, zmy.ExitUnreachable, exitUnreachable)
	require.Equal(t, zmy.ActorEnv, ActorEnv)
}

func TestMainForwardsWordsAndFlags(t *testing.T) {
	var got Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/admin/v1/exec", r.URL.Path)
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		_ = json.NewEncoder(w).Encode(Response{Exit: 4, Stdout: "out\n", Stderr: "err\n"})
	}))
	defer srv.Close()
	t.Setenv(ActorEnv, "r1/inc-000001/j1")
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
		require.Equal(t, "r1/inc-000001/j1", got.Actor, "the caller's ZMY_ACTOR goes with the command")
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

// rawServer answers every connection with the given bytes, then closes it.
func rawServer(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				_, _ = c.Read(buf) // the request fits one read
				_, _ = io.WriteString(c, answer)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestRawHTTPAnswers(t *testing.T) {
	ok := `{"exit":0,"stdout":"QUORUM_OK leader_id=n1 term=3 node=n1\n","stderr":""}`
	for name, tc := range map[string]struct {
		answer string
		code   int
		stdout string
		stderr string
	}{
		"content-length": {answer: "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
			fmt.Sprint(len(ok)) + "\r\n\r\n" + ok + "trailing bytes past the length are ignored",
			code: 0, stdout: "QUORUM_OK leader_id=n1 term=3 node=n1\n"},
		"close-delimited": {answer: "HTTP/1.1 200 OK\r\n\r\n" + ok, code: 0, stdout: "QUORUM_OK leader_id=n1 term=3 node=n1\n"},
		"truncated body":  {answer: "HTTP/1.0 200 OK\r\nContent-Length: 500\r\n\r\n" + ok, code: exitUnreachable, stderr: fmt.Sprintf("got %d of 500 body bytes", len(ok))},
		"no header end":   {answer: "HTTP/1.0 200 OK\r\nContent-Length: 5", code: exitUnreachable, stderr: "before the headers ended"},
		"bad status line": {answer: "SSH-2.0-OpenSSH_9.2\r\n\r\n", code: exitError, stderr: "malformed status line"},
		"chunked":         {answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}\r\n0\r\n\r\n", code: exitError, stderr: "unsupported Transfer-Encoding"},
		"not json":        {answer: "HTTP/1.0 200 OK\r\n\r\n<html>", code: exitError, stderr: "malformed answer from node"},
		"node error":      {answer: "HTTP/1.0 500 Internal Server Error\r\n\r\n{\"error\":\"injected failure\"}", code: exitError, stderr: "injected failure"},
		"bare 404":        {answer: "HTTP/1.0 404 Not Found\r\n\r\nnot found", code: exitError, stderr: "node answered HTTP 404"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(t.Context(), []string{"--endpoint", rawServer(t, tc.answer), "status", "--quorum"}, &out, &errb)
			require.Equal(t, tc.code, code, errb.String())
			require.Equal(t, tc.stdout, out.String())
			require.Contains(t, errb.String(), tc.stderr)
		})
	}
}

func TestEndpointForms(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(Response{Stdout: "ok\n"})
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	for _, ep := range []string{srv.URL, srv.URL + "/", "127.0.0.1:" + port, "http://localhost:" + port} {
		var out, errb bytes.Buffer
		require.Equal(t, 0, Main(t.Context(), []string{"--endpoint", ep, "status"}, &out, &errb), "%s: %s", ep, errb.String())
		require.Equal(t, "ok\n", out.String(), ep)
	}
	for ep, want := range map[string]string{
		"https://127.0.0.1:" + port:      "only http:// is supported",
		"http://zmy-node-1.example:8080": "want http://IP:PORT",
		"127.0.0.1":                      "want http://IP:PORT",
	} {
		var out, errb bytes.Buffer
		require.Equal(t, exitUsage, Main(t.Context(), []string{"--endpoint", ep, "status"}, &out, &errb), ep)
		require.Contains(t, errb.String(), want, ep)
	}
}

func TestHungNodeTimesOutAtTheContextDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(5 * time.Second) // accepts, never answers
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	start := time.Now()
	code := Main(ctx, []string{"--endpoint", ln.Addr().String(), "status"}, &out, &errb)
	require.Equal(t, exitUnreachable, code)
	require.Contains(t, errb.String(), "timed out")
	require.Less(t, time.Since(start), 2*time.Second)
}
