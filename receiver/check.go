package receiver

import (
	"errors"
	"fmt"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/zmyorg/zmy-responder/internal/config"
)

// CheckOptions are what `zmy-responder --config.check` judges: the configuration file and,
// when given on the command line, the flags that decide whether the daemon would start with it.
type CheckOptions struct {
	ConfigFile    string
	WebConfigFile string
	// ListenAddress is --web.listen-address when it was given; empty when not, and the check
	// then warns if the default (DefaultListenAddress) would be refused.
	ListenAddress string
}

// DefaultListenAddress is --web.listen-address's default: every interface.
const DefaultListenAddress = ":9095"

// CheckConfig loads and validates the configuration as Run does at start, and refuses what Run
// would refuse with the same flags. Warnings are what the daemon would log at WARN at start
// (or, without a listen address, the refusal the default address would get).
func CheckConfig(opts CheckOptions) (warnings []string, err error) {
	listen := opts.ListenAddress
	if listen == "" {
		listen = DefaultListenAddress
	}
	cfg, ex, err := preflight(opts.ConfigFile, opts.WebConfigFile, listen)
	var refused *exposureError
	switch {
	case err == nil:
	case opts.ListenAddress == "" && errors.As(err, &refused):
		warnings = append(warnings, fmt.Sprintf("with the default --web.listen-address=%s the daemon would not start: %v", ex.listenAddress, err))
	default:
		return nil, err
	}
	return append(cfg.Warnings(), warnings...), nil
}

// preflight is the fallible work of a start: load and validate the configuration and the web
// configuration, and refuse to serve unauthenticated mutating endpoints beyond loopback. The
// configuration is returned with an exposure refusal (an *exposureError), nil otherwise.
func preflight(configFile, webConfigFile, listenAddress string) (*config.Config, exposure, error) {
	ex := exposure{listenAddress: listenAddress}
	cfg, err := config.Load(configFile)
	if err != nil {
		return nil, ex, err
	}
	if err := web.Validate(webConfigFile); err != nil {
		return nil, ex, fmt.Errorf("web config %s: %w", webConfigFile, err)
	}
	if ex.webBasicAuth, err = webConfigHasBasicAuth(webConfigFile); err != nil {
		return nil, ex, err
	}
	if err := ex.check(cfg); err != nil {
		return cfg, ex, &exposureError{err}
	}
	return cfg, ex, nil
}

// exposureError is exposure.check's refusal, as preflight returns it.
type exposureError struct{ err error }

func (e *exposureError) Error() string { return e.err.Error() }
func (e *exposureError) Unwrap() error { return e.err }
