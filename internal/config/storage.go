package config

import (
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// StorageConfig is how the responder reaches a shared incident store. Which store, and etcd's
// endpoints and prefix, are flags (--storage.backend, --storage.etcd.*); credentials and
// timeouts are here. It is read when the daemon starts: a reload does not reconnect the store.
type StorageConfig struct {
	Etcd EtcdStorageConfig `yaml:"etcd"`
}

// EtcdStorageConfig is the connection to etcd with --storage.backend=etcd.
type EtcdStorageConfig struct {
	// TLSConfig: ca_file, cert_file and key_file (client certificate), server_name,
	// insecure_skip_verify; https:// endpoints use it.
	TLSConfig    commoncfg.TLSConfig `yaml:"tls_config,omitempty"`
	Username     string              `yaml:"username,omitempty"`
	PasswordFile string              `yaml:"password_file,omitempty"` // required with username
	// DialTimeout bounds connecting at start. Default 5s.
	DialTimeout model.Duration `yaml:"dial_timeout"`
	// RequestTimeout bounds each store call: etcd unreachable or without quorum fails a webhook
	// (503) or a runbook write after this long. Default 3s.
	RequestTimeout model.Duration `yaml:"request_timeout"`
}

// DefaultEtcdStorage is the etcd connection of an empty storage section.
var DefaultEtcdStorage = EtcdStorageConfig{
	DialTimeout:    model.Duration(5 * time.Second),
	RequestTimeout: model.Duration(3 * time.Second),
}

// UnmarshalYAML applies DefaultEtcdStorage, then the document.
func (e *EtcdStorageConfig) UnmarshalYAML(n *yaml.Node) error {
	*e = DefaultEtcdStorage
	type plain EtcdStorageConfig
	return n.Decode((*plain)(e))
}

// TLSEnabled says whether the connection uses TLS: an https endpoint or any TLS setting.
func (e *EtcdStorageConfig) TLSEnabled(endpoints []string) bool {
	for _, ep := range endpoints {
		if strings.HasPrefix(ep, "https://") {
			return true
		}
	}
	return e.TLSConfig != (commoncfg.TLSConfig{})
}

func (s *StorageConfig) resolvePaths(abs func(*string)) {
	abs(&s.Etcd.PasswordFile)
}

func (s *StorageConfig) validate(p *problems) {
	base := []any{"storage", "etcd"}
	e := &s.Etcd
	switch {
	case e.Username != "" && e.PasswordFile == "":
		p.add(at(base, "password_file"), "is required with username")
	case e.Username == "" && e.PasswordFile != "":
		p.add(at(base, "username"), "is required with password_file")
	case e.PasswordFile != "":
		checkFile(p, at(base, "password_file"), e.PasswordFile)
	}
	if e.TLSConfig != (commoncfg.TLSConfig{}) {
		// Building it reads the files: a missing CA, or a key that does not match its
		// certificate, is found by --config.check rather than at the first connection.
		if _, err := commoncfg.NewTLSConfig(&e.TLSConfig); err != nil {
			p.add(at(base, "tls_config"), "%v", err)
		}
	}
	positive(p, at(base, "dial_timeout"), e.DialTimeout)
	positive(p, at(base, "request_timeout"), e.RequestTimeout)
}
