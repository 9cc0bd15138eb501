package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the YAML file at path strictly (an unknown key is an error naming its line), applies
// the Default* values to every unset field, validates the result and resolves relative file paths
// against the file's directory.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve config path %s: %w", path, err)
	}
	cfg, err := load(b, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// LoadBytes is Load for a document held in memory. Relative paths in it are resolved against the
// working directory (Dir is left empty).
func LoadBytes(b []byte) (*Config, error) {
	return load(b, "")
}

// Default returns the configuration of an empty file: every Default* value, no clusters.
func Default() *Config {
	c := &Config{}
	c.setDefaults()
	return c
}

func load(b []byte, dir string) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	err := dec.Decode(&doc)
	switch {
	case errors.Is(err, io.EOF):
		// An empty file is a valid config: all defaults, no clusters.
	case err != nil:
		return nil, syntaxError(b, err)
	default:
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("line %d: only one YAML document is allowed", extra.Line)
		}
	}

	cfg := Default()
	if doc.Kind != 0 {
		dropNulls(&doc)
		// yaml.v3 does not carry KnownFields into custom UnmarshalYAML methods (Node.Decode starts
		// a fresh, lenient decoder), so strictness is enforced here over the whole tree instead.
		if err := checkKnownFields(&doc, reflect.TypeOf(Config{}), ""); err != nil {
			return nil, err
		}
		if err := doc.Decode(cfg); err != nil {
			return nil, err
		}
	}
	cfg.Dir = dir
	cfg.resolvePaths()
	if err := cfg.validate(&doc); err != nil {
		return nil, err
	}
	return cfg, nil
}

// dropNulls removes `key:` / `key: null` pairs from every mapping so that an empty value means
// "unset, use the default" instead of zeroing a whole section that has defaults.
func dropNulls(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			dropNulls(c)
		}
	case yaml.MappingNode:
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
				continue
			}
			dropNulls(v)
			kept = append(kept, k, v)
		}
		n.Content = kept
	}
}

// checkKnownFields walks the YAML tree alongside the Go type it decodes into and reports the
// first mapping key that no field of the struct accepts.
func checkKnownFields(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.ShortTag() == "!!null" {
		return nil
	}
	// Values with their own decoder (durations, secrets, URLs) report errors without a line;
	// decode them here, one by one, to say where the bad value is.
	if _, custom := reflect.PointerTo(t).MethodByName("UnmarshalYAML"); custom {
		if n.Kind == yaml.ScalarNode {
			if err := n.Decode(reflect.New(t).Interface()); err != nil {
				return customTypeError(n, t, path, err)
			}
			return nil
		}
	} else if n.Kind != yaml.DocumentNode && n.Kind != yaml.AliasNode {
		if err := typeError(n, t, path); err != nil {
			return err
		}
	}
	switch n.Kind {
	case yaml.ScalarNode:
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return checkKnownFields(n.Content[0], t, path)
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return nil // a type error the decoder reports with its own message
		}
		for i, c := range n.Content {
			if err := checkKnownFields(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Map:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if err := checkKnownFields(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
					return err
				}
			}
		case reflect.Struct:
			fields, anyKey := yamlFields(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Value == "<<" {
					continue // merge key: its content is checked where the anchor is defined
				}
				ft, ok := fields[k.Value]
				if !ok {
					if anyKey {
						continue
					}
					return fmt.Errorf("line %d: unknown field %q in %s (known fields: %s)",
						k.Line, k.Value, orTop(path), strings.Join(sortedKeys(fields), ", "))
				}
				if err := checkKnownFields(n.Content[i+1], ft, join(path, k.Value)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// yamlFields maps the YAML keys of struct t to their field types, flattening `,inline` structs;
// anyKey is true when an inline map accepts arbitrary keys.
func yamlFields(t reflect.Type) (fields map[string]reflect.Type, anyKey bool) {
	fields = map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Struct:
				inner, innerAny := yamlFields(ft)
				for k, v := range inner {
					fields[k] = v
				}
				anyKey = anyKey || innerAny
			case reflect.Map:
				anyKey = true
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's default key
		}
		fields[name] = f.Type
	}
	return fields, anyKey
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

func sortedKeys(m map[string]reflect.Type) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// resolvePaths makes every relative file path absolute against Dir.
func (c *Config) resolvePaths() {
	if c.Dir == "" {
		return
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(c.Dir, *p)
		}
	}
	for _, a := range []*AuthConfig{&c.Webhook.Auth, &c.API.Auth} {
		abs(&a.BearerTokenFile)
		if a.BasicAuth != nil {
			abs(&a.BasicAuth.PasswordFile)
		}
	}
	c.Alertmanager.HTTPClientConfig.SetDirectory(c.Dir)
	c.Storage.resolvePaths(abs)
	c.Storage.Etcd.TLSConfig.SetDirectory(c.Dir)
	for i := range c.Clusters {
		c.Clusters[i].AdminAPI.HTTPClientConfig.SetDirectory(c.Dir)
		for j := range c.Clusters[i].Redis {
			abs(&c.Clusters[i].Redis[j].PasswordFile)
		}
	}
}
