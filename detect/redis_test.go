package detect

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/zmyorg/zmy-responder/internal/config"
	"github.com/zmyorg/zmy-responder/internal/testenv"
)

// startRedis runs the Debian redis-server on a free loopback port, without persistence.
func startRedis(t *testing.T, extra ...string) string {
	t.Helper()
	bin := testenv.Binary(t, "redis-server")
	addr := closedAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir()}, extra...)
	cmd := exec.Command(bin, args...)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s not accepting within 10s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProbeRedisPing(t *testing.T) {
	addr := startRedis(t)
	target := func(rc config.RedisConfig) Target { return Target{Redis: rc} }

	r := run(t.Context(), ProbeRedis, target(config.RedisConfig{Name: "cache", Addr: addr}))
	require.Equal(t, StatusOK, r.Status, r.Reason)
	require.Equal(t, "PONG", r.Raw)

	// A bound no real PING can meet: the answer came, too late.
	r = run(t.Context(), ProbeRedis, target(config.RedisConfig{Name: "cache", Addr: addr, MaxLatency: model.Duration(time.Nanosecond)}))
	require.Equal(t, StatusFail, r.Status)
	require.Contains(t, r.Reason, "over max_latency 1ns")

	r = run(t.Context(), ProbeRedis, target(config.RedisConfig{Name: "gone", Addr: closedAddr(t)}))
	require.Equal(t, StatusError, r.Status)
	require.Contains(t, r.Reason, `redis "gone" PING`)
	require.Contains(t, r.Reason, "connection refused")
}

func TestProbeRedisPassword(t *testing.T) {
	addr := startRedis(t, "--requirepass", "s3cret")
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(good, []byte("s3cret\n"), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte("nope"), 0o600))

	r := run(t.Context(), ProbeRedis, Target{Redis: config.RedisConfig{Name: "auth", Addr: addr, PasswordFile: good}})
	require.Equal(t, StatusOK, r.Status, r.Reason)
	r = run(t.Context(), ProbeRedis, Target{Redis: config.RedisConfig{Name: "auth", Addr: addr, PasswordFile: bad}})
	require.Equal(t, StatusError, r.Status)
	require.Contains(t, r.Reason, "WRONGPASS")
}

// A server that accepts and never answers holds PING only until the caller's deadline.
func TestProbeRedisHonoursDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := run(ctx, ProbeRedis, Target{Redis: config.RedisConfig{Name: "mute", Addr: l.Addr().String()}})
	require.Equal(t, StatusError, r.Status)
	require.Less(t, time.Since(start), time.Second, strconv.Quote(r.Reason))
}
