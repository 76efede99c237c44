package config

import (
	"reflect"
	"strings"
	"time"
)

// EnvPrefix prefixes every environment variable this package reads.
const EnvPrefix = "MESHHOOK_ALERTS_"

// EnvConfigFile names the config file when no path is passed to Load.
const EnvConfigFile = EnvPrefix + "CONFIG"

// envAliases are extra environment names for a key, in MeshHook's .env
// spelling. The prefixed name (EnvName) wins over an alias.
func envAliases(key string) []string {
	switch key {
	case "supabase.url":
		return []string{"SUPABASE_URL"}
	case "supabase.service_role_key":
		// The new secret key first: legacy keys are being retired.
		return []string{"SUPABASE_SECRET_KEY", "SUPABASE_SERVICE_ROLE_KEY"}
	}
	return nil
}

// EnvName returns the environment variable for a dotted key, e.g.
// "supabase.url" → "MESHHOOK_ALERTS_SUPABASE_URL".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys returns every configuration key in dotted form ("sender.workers"),
// in declaration order.
func Keys() []string {
	var keys []string
	walk(reflect.ValueOf(Default()).Elem(), "", func(key string, _ reflect.Value) {
		keys = append(keys, key)
	})
	return keys
}

// walk calls fn for each leaf field of the struct v, in declaration order,
// with its dotted mapstructure key. Fields tagged "-" are skipped.
func walk(v reflect.Value, prefix string, fn func(key string, field reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		if f := v.Field(i); f.Kind() == reflect.Struct {
			walk(f, key, fn)
		} else {
			fn(key, f)
		}
	}
}

// schema is the set of known keys, derived from Default.
type schema struct {
	keys     []string                // leaves in declaration order
	defaults map[string]any          // leaf → default as a plain value
	types    map[string]reflect.Type // leaf → Go type
	sections map[string]bool         // every proper prefix of a leaf
}

func newSchema() *schema {
	s := &schema{
		defaults: make(map[string]any),
		types:    make(map[string]reflect.Type),
		sections: make(map[string]bool),
	}
	walk(reflect.ValueOf(Default()).Elem(), "", func(key string, f reflect.Value) {
		s.keys = append(s.keys, key)
		s.defaults[key] = plain(f, false)
		s.types[key] = f.Type()
		for i := strings.LastIndexByte(key, '.'); i > 0; i = strings.LastIndexByte(key[:i], '.') {
			s.sections[key[:i]] = true
		}
	})
	return s
}

// plain converts a leaf field to a plain value: secrets become strings
// (Redacted when redact is set), slices are copied, and durations become
// strings when redact is set (for display).
func plain(f reflect.Value, redact bool) any {
	switch {
	case f.Type() == reflect.TypeFor[Secret]():
		if redact {
			return f.Interface().(Secret).String()
		}
		return f.String()
	case f.Type() == reflect.TypeFor[time.Duration]() && redact:
		return f.Interface().(time.Duration).String()
	case f.Kind() == reflect.Slice:
		out := make([]string, f.Len())
		for i := range out {
			out[i] = plain(f.Index(i), redact).(string)
		}
		return out
	}
	return f.Interface()
}
