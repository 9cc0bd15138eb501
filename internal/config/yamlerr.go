package config

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// yaml.v3 reports a syntax error at the line where the enclosing construct started, not where
// the problem is (a mis-indented key on line 6 of a cluster reads "line 1: did not find expected
// key"). syntaxError finds the line itself: the first line from which every longer prefix of
// the document fails to parse. A prefix that ends inside a multi-line string or list fails
// too, but a later prefix that closes it parses again, so such lines are passed over.
func syntaxError(b []byte, err error) error {
	lines := bytes.SplitAfter(b, []byte("\n"))
	bad := 0
	for n := len(lines); n >= 1; n-- {
		var doc yaml.Node
		if yaml.Unmarshal(bytes.Join(lines[:n], nil), &doc) == nil {
			break
		}
		bad = n
	}
	msg := yamlLinePrefix.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")
	if bad == 0 {
		return fmt.Errorf("parse YAML: %s", msg)
	}
	return fmt.Errorf("parse YAML: line %d: %s: %q", bad, msg, strings.TrimRight(string(lines[bad-1]), "\r\n"))
}

var yamlLinePrefix = regexp.MustCompile(`^line \d+: `)

// typeError checks that node n can hold a value of type t, so that a wrong type is reported
// with the key it was given for ("line 26: webhook.max_body_bytes: want an integer, got
// `one meg`") rather than yaml.v3's "line 26: cannot unmarshal !!str `one meg` into int64".
// Types with their own decoder are checked by their decoder.
func typeError(n *yaml.Node, t reflect.Type, path string) error {
	want := ""
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			want = "a list"
		}
	case reflect.Struct, reflect.Map:
		if n.Kind != yaml.MappingNode {
			want = "a mapping of keys to values"
		}
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		want = "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		want = "a number"
	case reflect.String:
		want = "a string"
	default:
		return nil
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Struct, reflect.Map:
		if want == "" {
			return nil
		}
	default:
		if n.Kind == yaml.ScalarNode && n.Decode(reflect.New(t).Interface()) == nil {
			return nil
		}
	}
	return fmt.Errorf("line %d: %s: want %s, got %s", n.Line, orTop(path), want, describeNode(n))
}

// customTypeError reports a scalar its type's own decoder refused. A section decoded through
// UnmarshalYAML (detection, remediation, …) given a scalar gets the same message as any other
// mapping; other decoders' errors keep their words without yaml.v3's "unmarshal errors" framing.
func customTypeError(n *yaml.Node, t reflect.Type, path string, err error) error {
	empty := yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if empty.Decode(reflect.New(t).Interface()) == nil {
		return fmt.Errorf("line %d: %s: want a mapping of keys to values, got %s", n.Line, orTop(path), describeNode(n))
	}
	msg := yamlUnmarshalFraming.ReplaceAllString(err.Error(), "")
	return fmt.Errorf("line %d: %s: %s", n.Line, orTop(path), msg)
}

var yamlUnmarshalFraming = regexp.MustCompile(`^yaml: unmarshal errors:\s*(line \d+: )?`)

// describeNode says what a YAML node holds, for error messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 60 {
		v = v[:60] + "…"
	}
	return fmt.Sprintf("%q", v)
}
