package config

import (
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted returns the configuration as nested maps keyed like the YAML file,
// with secrets shown as Redacted (or "" when unset) and durations as strings.
// It is meant for logging the effective configuration, e.g.
// zap.Any("config", cfg.Redacted()).
func (c *Config) Redacted() map[string]any {
	flat := make(map[string]any)
	walk(reflect.ValueOf(c).Elem(), "", func(key string, f reflect.Value) {
		flat[key] = plain(f, true)
	})
	return nest(flat)
}

// String renders the configuration as YAML in declaration order, with
// secrets redacted as in Redacted.
func (c *Config) String() string {
	if c == nil {
		return "<nil>"
	}
	root := &yaml.Node{Kind: yaml.MappingNode}
	sections := make(map[string]*yaml.Node)
	walk(reflect.ValueOf(c).Elem(), "", func(key string, f reflect.Value) {
		parent := root
		parts := strings.Split(key, ".")
		for i := range len(parts) - 1 {
			path := strings.Join(parts[:i+1], ".")
			sec, ok := sections[path]
			if !ok {
				sec = &yaml.Node{Kind: yaml.MappingNode}
				sections[path] = sec
				parent.Content = append(parent.Content, scalar(parts[i]), sec)
			}
			parent = sec
		}
		var val yaml.Node
		if err := val.Encode(plain(f, true)); err != nil {
			val = *scalar("?")
		}
		if val.Kind == yaml.SequenceNode {
			val.Style = yaml.FlowStyle
		}
		parent.Content = append(parent.Content, scalar(parts[len(parts)-1]), &val)
	})
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return "config: " + err.Error()
	}
	return b.String()
}

func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}
