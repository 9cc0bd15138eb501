// Package rules ships zmy-responder's Prometheus rules: the *.rules.yml files beside this one,
// their promtool unit tests under tests/, and RUNBOOKS.md that their runbook_url annotations
// point at. The Go side only reads them, for the Kubernetes PrometheusRule generator and for the
// tests that prove every metric the rules name exists.
package rules

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"

	"gopkg.in/yaml.v3"
)

// FS holds the rule files, exactly as Prometheus loads them.
//
//go:embed *.rules.yml
var FS embed.FS

// File is one rule file.
type File struct {
	Name   string  `yaml:"-"`
	Groups []Group `yaml:"groups"`
}

// Group is one rule group.
type Group struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []Rule `yaml:"rules"`
}

// Rule is an alerting rule (Alert set) or a recording rule (Record set).
type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Names returns the rule file names in FS, sorted.
func Names() ([]string, error) {
	names, err := fs.Glob(FS, "*.rules.yml")
	if err != nil {
		return nil, fmt.Errorf("list rule files: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// Load parses every rule file in FS, strictly: a misspelt key is an error here before it is
// one in Prometheus.
func Load() ([]File, error) {
	names, err := Names()
	if err != nil {
		return nil, err
	}
	files := make([]File, 0, len(names))
	for _, name := range names {
		f, err := FS.Open(name)
		if err != nil {
			return nil, fmt.Errorf("open rule file %s: %w", name, err)
		}
		dec := yaml.NewDecoder(f)
		dec.KnownFields(true)
		var rf File
		err = dec.Decode(&rf)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("parse rule file %s: %w", name, err)
		}
		rf.Name = name
		files = append(files, rf)
	}
	return files, nil
}
