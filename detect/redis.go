package detect

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisMaxLatency bounds PING when the dependency sets no max_latency.
const DefaultRedisMaxLatency = 100 * time.Millisecond

// ProbeRedisPing PINGs the Redis dependency in t.Redis. A PONG slower than max_latency is a fail:
// a dependency that slow hurts the cluster as much as one that is down.
func ProbeRedisPing(ctx context.Context, t Target) Result {
	rc := t.Redis
	if rc.Addr == "" {
		return Result{Status: StatusError, Reason: fmt.Sprintf("redis %q has no addr configured", rc.Name)}
	}
	opts := &redis.Options{Addr: rc.Addr, PoolSize: 1, DisableIdentity: true,
		// One try: a probe reports what it saw, and retrying would spend the caller's budget.
		MaxRetries: -1, DialerRetries: 1,
		// go-redis otherwise applies its own 5s/3s timeouts over ctx's; we want ctx's alone.
		ContextTimeoutEnabled: true}
	if rc.PasswordFile != "" {
		pw, err := os.ReadFile(rc.PasswordFile)
		if err != nil {
			return Result{Status: StatusError, Err: err, Reason: fmt.Sprintf("redis %q: read password file: %v", rc.Name, err)}
		}
		opts.Password = strings.TrimSpace(string(pw))
	}
	client := redis.NewClient(opts)
	defer client.Close()

	bound := time.Duration(rc.MaxLatency)
	if bound <= 0 {
		bound = DefaultRedisMaxLatency
	}
	start := time.Now()
	pong, err := client.Ping(ctx).Result()
	took := time.Since(start)
	if err != nil {
		return Result{Status: StatusError, Err: err, Reason: fmt.Sprintf("redis %q PING %s: %v", rc.Name, rc.Addr, err)}
	}
	r := Result{Status: StatusOK, Raw: pong, Value: fmt.Sprintf("%s in %s", pong, took.Round(time.Microsecond))}
	if took > bound {
		r.Status, r.Reason = StatusFail, fmt.Sprintf("redis %q PING took %s, over max_latency %s", rc.Name, took.Round(time.Microsecond), bound)
	}
	return r
}
