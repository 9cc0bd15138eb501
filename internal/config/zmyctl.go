package config

import (
	"bytes"
	"fmt"
	"text/template"
)

// ZmyctlData is what each element of a cluster's zmyctl argv template is executed with:
// {{.Node.ID}}, {{.Node.Host}}, {{.Node.Admin}} (any NodeConfig field) and {{.Cluster}}, the
// cluster's name.
type ZmyctlData struct {
	Node    NodeConfig
	Cluster string
}

// ParseZmyctl parses every element of an argv template. Missing keys are errors at execution so
// that a typo such as {{.Node.Adress}} cannot silently become an empty argument.
func ParseZmyctl(argv []string) ([]*template.Template, error) {
	ts := make([]*template.Template, len(argv))
	for i, a := range argv {
		t, err := template.New(fmt.Sprintf("zmyctl[%d]", i)).Option("missingkey=error").Parse(a)
		if err != nil {
			return nil, fmt.Errorf("zmyctl[%d] %q: %w", i, a, err)
		}
		ts[i] = t
	}
	return ts, nil
}

// ArgvTemplate is a cluster's parsed zmyctl argv template: the one place where it is rendered
// (the driver runs it, the plan prints it).
type ArgvTemplate struct {
	cluster string
	ts      []*template.Template
}

// ParseArgv parses the cluster's zmyctl argv template.
func (c *ClusterConfig) ParseArgv() (*ArgvTemplate, error) {
	ts, err := ParseZmyctl(c.Zmyctl)
	if err != nil {
		return nil, err
	}
	return &ArgvTemplate{cluster: c.Name, ts: ts}, nil
}

// Render executes the template for one node.
func (a *ArgvTemplate) Render(node NodeConfig) ([]string, error) {
	return execArgv(a.ts, ZmyctlData{Node: node, Cluster: a.cluster})
}

// Argv renders the cluster's zmyctl argv template for one node.
func (c *ClusterConfig) Argv(node NodeConfig) ([]string, error) {
	a, err := c.ParseArgv()
	if err != nil {
		return nil, err
	}
	return a.Render(node)
}

func execArgv(ts []*template.Template, data ZmyctlData) ([]string, error) {
	out := make([]string, len(ts))
	var buf bytes.Buffer
	for i, t := range ts {
		buf.Reset()
		if err := t.Execute(&buf, data); err != nil {
			return nil, fmt.Errorf("zmyctl[%d]: %w", i, err)
		}
		out[i] = buf.String()
	}
	return out, nil
}

// templateUses reports which node fields the argv template reads, by rendering it with a marker
// in each field: a node must then set every field its command line depends on.
func templateUses(ts []*template.Template) (map[string]bool, error) {
	markers := map[string]string{"id": "\x00id\x00", "host": "\x00host\x00", "admin": "\x00admin\x00"}
	probe := ZmyctlData{
		Node:    NodeConfig{ID: markers["id"], Host: markers["host"], Admin: markers["admin"]},
		Cluster: "cluster",
	}
	argv, err := execArgv(ts, probe)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for field, m := range markers {
		for _, a := range argv {
			if bytes.Contains([]byte(a), []byte(m)) {
				used[field] = true
			}
		}
	}
	return used, nil
}
