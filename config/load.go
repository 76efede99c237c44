package config

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// DefaultSearchPaths returns the files Load tries, in order, when neither a
// path nor MESHHOOK_ALERTS_CONFIG names one.
func DefaultSearchPaths() []string {
	return []string{"config.yaml", "/etc/meshhook-alerts/config.yaml"}
}

// Load builds the configuration from defaults, a YAML file and the
// environment environ (in os.Environ form, "KEY=value"; nil means none).
//
// The file is path if non-empty, else the one named by MESHHOOK_ALERTS_CONFIG,
// else the first of DefaultSearchPaths that exists, else none. A file named
// explicitly (by path or MESHHOOK_ALERTS_CONFIG) must exist.
//
// Environment variables override the file; empty values are ignored, as are
// variables without the MESHHOOK_ALERTS_ prefix other than SUPABASE_URL,
// SUPABASE_SECRET_KEY and SUPABASE_SERVICE_ROLE_KEY (the first of the two
// set wins). A MESHHOOK_ALERTS_ variable that names no key is
// an error, as is an unknown key in the file.
//
// After decoding, an empty realtime.url is derived from supabase.url and an
// empty sender.user_agent becomes DefaultUserAgent(). Load does not call
// Validate.
func Load(path string, environ []string) (*Config, error) {
	return load(path, environ, DefaultSearchPaths())
}

func load(path string, environ []string, search []string) (*Config, error) {
	cfg, problems, err := loadAll(path, environ, search)
	if err == nil && len(problems.errs) > 0 {
		err = errors.Join(problems.errs...)
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadAndValidate loads the configuration as Load does and validates it as
// Validate does, reporting every problem at once: an unknown key, a value
// that does not decode (a bad duration) and a value Validate refuses do not
// hide one another. A key whose value does not decode is validated at its
// default meanwhile, and Validate's findings about it are left out (its
// decode error already names it). Only a file that cannot be read or
// parsed stops it early.
func LoadAndValidate(path string, environ []string) (*Config, error) {
	return loadAndValidate(path, environ, DefaultSearchPaths())
}

func loadAndValidate(path string, environ []string, search []string) (*Config, error) {
	cfg, problems, err := loadAll(path, environ, search)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		problems.add(problems.unrelated(cfg.Validate())...)
	}
	if len(problems.errs) > 0 {
		return nil, errors.Join(problems.errs...)
	}
	return cfg, nil
}

// loadProblems are problems with single keys, which leave the rest of the
// configuration usable; keys are the keys whose values were replaced by
// their defaults because they did not decode.
type loadProblems struct {
	errs []error
	keys []string
}

func (p *loadProblems) add(errs ...error) { p.errs = append(p.errs, errs...) }

// unrelated returns Validate's problems that concern none of p.keys, taking
// err apart when it joins several.
func (p *loadProblems) unrelated(err error) []error {
	if err == nil {
		return nil
	}
	all := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		all = j.Unwrap()
	}
	var out []error
	for _, e := range all {
		if !slices.ContainsFunc(p.keys, func(k string) bool { return mentions(e.Error(), k) }) {
			out = append(out, e)
		}
	}
	return out
}

// mentions reports whether msg names key as a whole ("sender.lease" is not
// mentioned by "sender.lease_x").
func mentions(msg, key string) bool {
	for i := 0; ; {
		j := strings.Index(msg[i:], key)
		if j < 0 {
			return false
		}
		end := i + j + len(key)
		before := i + j
		if (before == 0 || !isKeyByte(msg[before-1])) && (end == len(msg) || !isKeyByte(msg[end])) {
			return true
		}
		i = end
	}
}

func isKeyByte(b byte) bool {
	return b == '_' || b == '.' || ('a' <= b && b <= 'z') || ('0' <= b && b <= '9')
}

// loadAll builds the configuration, collecting the problems of single keys
// (unknown environment variables or file keys, values of the wrong shape or
// that do not decode) instead of stopping at the first. cfg is nil when it
// could not be built; err is a problem that stops loading (an unreadable
// or unparsable file).
func loadAll(path string, environ []string, search []string) (cfg *Config, problems loadProblems, err error) {
	s := newSchema()
	env := envMap(environ)
	overrides, err := s.fromEnv(env)
	if err != nil {
		problems.add(err) // the variables it names are ignored; the others apply
	}
	file, err := findFile(path, env, search)
	if err != nil {
		return nil, problems, err
	}

	v := viper.New()
	for _, k := range s.keys {
		// Every key needs a default: viper's Unmarshal only sees keys it knows.
		v.SetDefault(k, s.defaults[k])
	}
	if file != "" {
		values, keyErrs, err := s.readFile(file)
		if err != nil {
			return nil, problems, err
		}
		problems.add(keyErrs...) // unknown keys and misshapen values are left out
		if err := v.MergeConfigMap(nest(values)); err != nil {
			return nil, problems, fmt.Errorf("merge config file %s: %w", file, err)
		}
	}
	for k, val := range overrides {
		v.Set(k, val)
	}

	hook := viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(durationHook, wholeNumberHook, stringToSliceHook))
	cfg = &Config{}
	if err := v.UnmarshalExact(cfg, hook); err != nil {
		decodeErrs := fieldErrors(err)
		problems.add(decodeErrs...)
		// Decode again with the offending keys at their defaults, so that
		// the rest can be validated.
		for _, e := range decodeErrs {
			var fe *FieldError
			key := ""
			if errors.As(e, &fe) {
				key, _, _ = strings.Cut(fe.Field, "[")
			}
			if _, known := s.defaults[key]; !known {
				return nil, problems, nil
			}
			v.Set(key, s.defaults[key])
			problems.keys = append(problems.keys, key)
		}
		cfg = &Config{}
		if v.UnmarshalExact(cfg, hook) != nil {
			return nil, problems, nil
		}
	}
	cfg.File = file
	if cfg.Realtime.URL == "" {
		// An invalid supabase.url leaves realtime.url empty; Validate reports it.
		cfg.Realtime.URL, _ = RealtimeURLFromSupabase(cfg.Supabase.URL)
	}
	if cfg.Sender.UserAgent == "" {
		cfg.Sender.UserAgent = DefaultUserAgent()
	}
	return cfg, problems, nil
}

// RealtimeURLFromSupabase derives the Realtime websocket endpoint from a
// Supabase project URL: https://x.supabase.co → wss://x.supabase.co/realtime/v1/websocket
// (http becomes ws). Any path on the project URL is kept as a prefix.
func RealtimeURLFromSupabase(supabaseURL string) (string, error) {
	u, err := url.Parse(supabaseURL)
	if err != nil {
		return "", fmt.Errorf("derive realtime url: %w", err)
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	default:
		return "", fmt.Errorf("derive realtime url: scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("derive realtime url: no host")
	}
	u.User, u.RawQuery, u.Fragment, u.RawPath = nil, "", "", ""
	u.Path = strings.TrimSuffix(u.Path, "/") + "/realtime/v1/websocket"
	return u.String(), nil
}

// envMap turns os.Environ-style entries into a map; later entries win, like
// os.Getenv on most systems.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// fromEnv returns the keys set by the environment. A prefixed variable that
// names no key is an error, returned with the keys the others set.
func (s *schema) fromEnv(env map[string]string) (map[string]any, error) {
	known := map[string]bool{EnvConfigFile: true}
	out := make(map[string]any)
	for _, k := range s.keys {
		name := EnvName(k)
		known[name] = true
		if v := env[name]; v != "" {
			out[k] = v
			continue
		}
		for _, alias := range envAliases(k) {
			if v := env[alias]; v != "" {
				out[k] = v
				break
			}
		}
	}
	var unknown []string
	for name := range env {
		if strings.HasPrefix(name, EnvPrefix) && !known[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return out, fmt.Errorf("environment: unknown variable(s) %s (names are %s<SECTION>_<KEY>)",
			strings.Join(unknown, ", "), EnvPrefix)
	}
	return out, nil
}

// findFile picks the config file; "" means none.
func findFile(path string, env map[string]string, search []string) (string, error) {
	explicit := path
	if explicit == "" {
		explicit = env[EnvConfigFile]
	}
	if explicit != "" {
		fi, err := os.Stat(explicit)
		if err != nil {
			return "", fmt.Errorf("config file: %w", err)
		}
		if fi.IsDir() {
			return "", fmt.Errorf("config file %s: is a directory", explicit)
		}
		return explicit, nil
	}
	for _, p := range search {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", nil
}

// readFile parses the YAML file and returns its values by dotted key. Unknown
// keys and values of the wrong shape are left out and reported in keyErrs,
// with file and line; err is a file that cannot be read or parsed.
func (s *schema) readFile(path string) (values map[string]any, keyErrs []error, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("parse config file %s: %w", path, err)
	}
	out := make(map[string]any)
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return out, nil, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("%s:%d: top level must be a mapping of sections", path, root.Line)
	}
	s.walkNode(path, root, "", out, &keyErrs)
	return out, keyErrs, nil
}

func (s *schema) walkNode(path string, n *yaml.Node, prefix string, out map[string]any, errs *[]error) {
	fail := func(line int, format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, args...)))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if val.Kind == yaml.AliasNode && val.Alias != nil {
			val = val.Alias
		}
		full := k.Value
		if prefix != "" {
			full = prefix + "." + k.Value
		}
		switch {
		case k.Kind != yaml.ScalarNode || strings.Contains(k.Value, "."):
			fail(k.Line, "unknown key %q", full)
		case s.types[full] != nil:
			if isNull(val) {
				continue // "key:" with no value keeps the default
			}
			list := s.types[full].Kind() == reflect.Slice
			switch {
			case val.Kind == yaml.MappingNode, val.Kind == yaml.SequenceNode && !list:
				fail(val.Line, "%s: expected a single value, got a %s", full, kindName(val))
				continue
			case val.Kind == yaml.SequenceNode && !allScalars(val):
				fail(val.Line, "%s: expected a list of plain values", full)
				continue
			}
			var x any
			if err := val.Decode(&x); err != nil {
				fail(val.Line, "%s: %v", full, err)
				continue
			}
			out[full] = x
		case s.sections[full]:
			if isNull(val) {
				continue
			}
			if val.Kind != yaml.MappingNode {
				fail(val.Line, "%s: expected a mapping, got a %s", full, kindName(val))
				continue
			}
			s.walkNode(path, val, full, out, errs)
		default:
			fail(k.Line, "unknown key %q", full)
		}
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func allScalars(n *yaml.Node) bool {
	for _, c := range n.Content {
		if c.Kind == yaml.AliasNode && c.Alias != nil {
			c = c.Alias
		}
		if c.Kind != yaml.ScalarNode {
			return false
		}
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "single value"
	}
}

// nest turns {"a.b": 1} into {"a": {"b": 1}} for viper.MergeConfigMap.
func nest(flat map[string]any) map[string]any {
	root := make(map[string]any)
	for key, val := range flat {
		m := root
		parts := strings.Split(key, ".")
		for _, p := range parts[:len(parts)-1] {
			child, ok := m[p].(map[string]any)
			if !ok {
				child = make(map[string]any)
				m[p] = child
			}
			m = child
		}
		m[parts[len(parts)-1]] = val
	}
	return root
}

// fieldErrors rewrites mapstructure's decode errors as FieldErrors, so each
// line reads "sender.workers: cannot parse \"many\" as int".
func fieldErrors(err error) []error {
	var out []error
	var visit func(error)
	visit = func(e error) {
		switch x := e.(type) {
		case *mapstructure.DecodeError:
			problem := x.Unwrap().Error()
			var pe *mapstructure.ParseError
			if errors.As(x, &pe) && pe.Expected.IsValid() {
				problem = fmt.Sprintf("cannot parse %q as %s", fmt.Sprint(pe.Value), pe.Expected.Type())
			}
			out = append(out, &FieldError{Field: x.Name(), Problem: problem})
		case interface{ Unwrap() []error }:
			for _, c := range x.Unwrap() {
				visit(c)
			}
		case interface{ Unwrap() error }:
			if inner := x.Unwrap(); inner != nil {
				visit(inner)
			} else {
				out = append(out, e)
			}
		default:
			out = append(out, e)
		}
	}
	visit(err)
	return out
}

// durationHook decodes Go duration strings ("25s") and rejects bare numbers
// other than 0, which mapstructure would otherwise read as nanoseconds.
func durationHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	switch d := data.(type) {
	case time.Duration:
		return d, nil
	case string:
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("invalid duration %q: want a Go duration such as \"25s\" or \"5m\"", d)
		}
		return dur, nil
	}
	if rv := reflect.ValueOf(data); rv.IsValid() && rv.CanConvert(reflect.TypeFor[float64]()) &&
		rv.Kind() != reflect.Bool && rv.Convert(reflect.TypeFor[float64]()).Float() == 0 {
		return time.Duration(0), nil
	}
	return nil, fmt.Errorf("invalid duration %v: want a Go duration such as \"25s\" or \"5m\"", data)
}

// wholeNumberHook rejects fractional numbers for integer fields, which weak
// decoding would otherwise truncate.
func wholeNumberHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if f, ok := data.(float64); ok && to.Kind() == reflect.Int && f != math.Trunc(f) {
		return nil, fmt.Errorf("must be a whole number, got %v", f)
	}
	return data, nil
}

// stringToSliceHook splits comma-separated strings (from the environment)
// into trimmed, non-empty elements.
func stringToSliceHook(from reflect.Type, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	out := []string{}
	for _, part := range strings.Split(reflect.ValueOf(data).String(), ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out, nil
}
