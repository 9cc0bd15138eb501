package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Options' zero values.
const (
	DefaultShards        = 4
	DefaultElectionDelay = 300 * time.Millisecond
	DefaultEtcdLeaseTTL  = 10 * time.Second
	DefaultHost          = "127.0.0.1"
)

// Options configure a simulated cluster. Zero values mean the documented defaults, except
// WriteRate, where zero pauses the write load.
type Options struct {
	Cluster   string  // cluster name; required
	Nodes     int     // number of nodes n1…nN; required, ≥ 1
	Shards    int     // shards the write load spreads over; default 4
	WriteRate float64 // accepted-or-rejected write attempts per second across the cluster

	// ElectionDelay is how long a group without a leader waits before electing one: the
	// heartbeat timeout of the model. Default 300ms so tests stay fast.
	ElectionDelay time.Duration

	// Host is the loopback address every port binds to. Default 127.0.0.1.
	Host string
	// AdminAddress is where the simulator-wide control API listens; empty disables it.
	AdminAddress string

	EtcdEndpoints []string      // when set, nodes keep lease keys in etcd
	EtcdLeaseTTL  time.Duration // default 10s
	EtcdPrefix    string        // default /zmy/<cluster>/nodes/

	Logger *slog.Logger // default: discard
}

func (o *Options) applyDefaults() error {
	if o.Cluster == "" {
		return errors.New("cluster name is required")
	}
	if o.Nodes < 1 {
		return fmt.Errorf("nodes must be at least 1, got %d", o.Nodes)
	}
	if o.WriteRate < 0 {
		return fmt.Errorf("write rate must not be negative, got %v", o.WriteRate)
	}
	if o.Shards == 0 {
		o.Shards = DefaultShards
	}
	if o.Shards < 1 {
		return fmt.Errorf("shards must be at least 1, got %d", o.Shards)
	}
	if o.ElectionDelay <= 0 {
		o.ElectionDelay = DefaultElectionDelay
	}
	if o.Host == "" {
		o.Host = DefaultHost
	}
	if o.EtcdLeaseTTL <= 0 {
		o.EtcdLeaseTTL = DefaultEtcdLeaseTTL
	}
	if o.EtcdPrefix == "" {
		o.EtcdPrefix = "/zmy/" + o.Cluster + "/nodes/"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
