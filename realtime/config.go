package realtime

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meshhook/meshhook-alerts/internal/logging"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// Defaults applied by [New] to zero Config fields.
const (
	DefaultHeartbeatInterval = 25 * time.Second
	DefaultJoinTimeout       = 15 * time.Second
	DefaultReconnectInitial  = 1 * time.Second
	DefaultReconnectMax      = 10 * time.Second
	DefaultBufferSize        = 1024
	DefaultBufferWait        = 5 * time.Second
	DefaultHandshakeTimeout  = 10 * time.Second
)

// Binding is one postgres_changes subscription inside a channel.
//
// Event is "*", "INSERT", "UPDATE" or "DELETE" (case-insensitive; empty means
// "*"). Schema and Table name the relation; Filter is an optional PostgREST
// style filter such as "id=eq.1" and requires both Schema and Table. Empty
// fields are omitted from the join payload, never sent as "" or null (§2.2).
type Binding struct {
	Event  string
	Schema string
	Table  string
	Filter string
}

// ChannelSpec describes one Realtime channel. Its topic is "realtime:"+Name.
type ChannelSpec struct {
	Name     string
	Bindings []Binding
}

// TokenProvider supplies the JWT sent as access_token when a channel joins
// and when the token is refreshed. Token is called on the goroutine running
// [Client.Run] before every join (including the rejoin after the server
// closed a channel because its token expired) and when the previous token
// reaches 80% of its lifetime or 60s before exp, whichever is earlier. It
// must return a token valid for at least the join, should cache, and should
// return quickly; the context carries a deadline (Config.JoinTimeout).
type TokenProvider interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a TokenProvider that always returns the same token.
type StaticToken string

// Token returns the token itself.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }

// Config configures a [Client]. URL and APIKey are required; every other
// zero field takes the documented default.
type Config struct {
	// URL is the Supabase project URL, http(s)://host[:port][/prefix]; the
	// socket URL ws(s)://host[:port][/prefix]/realtime/v1/websocket is derived
	// from it. A ws:// or wss:// URL ending in /websocket is used as-is.
	URL string
	// APIKey authenticates the socket (query parameter apikey). It is never
	// logged.
	APIKey string
	// Tokens supplies the channel access_token. Defaults to StaticToken(APIKey).
	Tokens TokenProvider
	// Vsn is the serializer version, VsnV2 ("2.0.0", default) or VsnV1.
	Vsn string
	// HeartbeatInterval is the time between heartbeats. A heartbeat still
	// unanswered at the next tick ends the session. Defaults to 25s.
	HeartbeatInterval time.Duration
	// JoinTimeout bounds the wait for a join reply. Defaults to 15s (the
	// server delays join errors by 5s).
	JoinTimeout time.Duration
	// ReconnectInitial and ReconnectMax shape the jittered exponential
	// backoff (x2 per attempt, ±50% jitter) used between sessions and between
	// rejoins of a failing channel. Default 1s and 10s.
	ReconnectInitial time.Duration
	ReconnectMax     time.Duration
	// BufferSize is the capacity of the Events channel. When it is full,
	// a change waits up to BufferWait for room, then it is dropped and
	// reported as a Gap. Defaults to 1024.
	BufferSize int
	// BufferWait is how long a change waits for room in a full Events
	// channel. While it waits the client reads nothing more from the
	// socket, so a consumer that is briefly slower than the changes (a
	// burst) holds them back on the server (which buffers up to its own
	// limit) instead of losing them to a Gap and a catch-up. Defaults to
	// 5s; negative drops at once.
	BufferWait time.Duration
	// Logger receives the client's logs under the name "realtime". Defaults
	// to a no-op logger.
	Logger *zap.Logger
	// Dialer opens the websocket. Defaults to a dialer that verifies TLS,
	// honours HTTP(S)_PROXY from the environment and has a 10s handshake
	// timeout; a given Dialer without HandshakeTimeout gets 10s (on a copy).
	Dialer *websocket.Dialer
	// OnStateChange, if set, is called on every socket and channel state
	// transition, synchronously on the goroutine running Run. It must not
	// block.
	OnStateChange func(StateChange)
}

// ConfigError reports an invalid Config or ChannelSpec field.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("realtime: invalid config: %s: %s", e.Field, e.Reason)
}

// normalize validates cfg and channels and returns copies with defaults
// applied.
func normalize(cfg Config, channels []ChannelSpec) (Config, []ChannelSpec, *url.URL, error) {
	if strings.TrimSpace(cfg.APIKey) == "" {
		return cfg, nil, nil, &ConfigError{Field: "APIKey", Reason: "must not be empty"}
	}
	switch cfg.Vsn {
	case "":
		cfg.Vsn = VsnV2
	case VsnV1, VsnV2:
	default:
		return cfg, nil, nil, &ConfigError{Field: "Vsn", Reason: fmt.Sprintf("must be %q or %q, got %q", VsnV2, VsnV1, cfg.Vsn)}
	}
	u, err := socketURL(cfg.URL, cfg.APIKey, cfg.Vsn)
	if err != nil {
		return cfg, nil, nil, &ConfigError{Field: "URL", Reason: err.Error()}
	}
	durations := []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"HeartbeatInterval", &cfg.HeartbeatInterval, DefaultHeartbeatInterval},
		{"JoinTimeout", &cfg.JoinTimeout, DefaultJoinTimeout},
		{"ReconnectInitial", &cfg.ReconnectInitial, DefaultReconnectInitial},
		{"ReconnectMax", &cfg.ReconnectMax, DefaultReconnectMax},
	}
	for _, d := range durations {
		switch {
		case *d.d < 0:
			return cfg, nil, nil, &ConfigError{Field: d.name, Reason: fmt.Sprintf("must not be negative, got %s", *d.d)}
		case *d.d == 0:
			*d.d = d.def
		}
	}
	if cfg.ReconnectMax < cfg.ReconnectInitial {
		return cfg, nil, nil, &ConfigError{Field: "ReconnectMax", Reason: fmt.Sprintf("%s is less than ReconnectInitial %s", cfg.ReconnectMax, cfg.ReconnectInitial)}
	}
	switch {
	case cfg.BufferSize < 0:
		return cfg, nil, nil, &ConfigError{Field: "BufferSize", Reason: fmt.Sprintf("must not be negative, got %d", cfg.BufferSize)}
	case cfg.BufferSize == 0:
		cfg.BufferSize = DefaultBufferSize
	}
	switch {
	case cfg.BufferWait < 0:
		cfg.BufferWait = 0
	case cfg.BufferWait == 0:
		cfg.BufferWait = DefaultBufferWait
	}
	if cfg.Tokens == nil {
		cfg.Tokens = StaticToken(cfg.APIKey)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &websocket.Dialer{
			Proxy:            http.ProxyFromEnvironment,
			HandshakeTimeout: DefaultHandshakeTimeout,
		}
	} else if cfg.Dialer.HandshakeTimeout == 0 {
		d := *cfg.Dialer // never mutate the caller's dialer
		d.HandshakeTimeout = DefaultHandshakeTimeout
		cfg.Dialer = &d
	}
	specs, err := normalizeChannels(channels)
	if err != nil {
		return cfg, nil, nil, err
	}
	return cfg, specs, u, nil
}

func normalizeChannels(channels []ChannelSpec) ([]ChannelSpec, error) {
	if len(channels) == 0 {
		return nil, &ConfigError{Field: "channels", Reason: "at least one channel is required"}
	}
	out := make([]ChannelSpec, len(channels))
	names := make(map[string]int, len(channels))
	for i, ch := range channels {
		field := fmt.Sprintf("channels[%d]", i)
		if strings.TrimSpace(ch.Name) == "" {
			return nil, &ConfigError{Field: field + ".Name", Reason: "must not be empty"}
		}
		if j, dup := names[ch.Name]; dup {
			return nil, &ConfigError{Field: field + ".Name", Reason: fmt.Sprintf("%q duplicates channels[%d]", ch.Name, j)}
		}
		names[ch.Name] = i
		if len(ch.Bindings) == 0 {
			return nil, &ConfigError{Field: field + ".Bindings", Reason: "at least one binding is required"}
		}
		out[i] = ChannelSpec{Name: ch.Name, Bindings: make([]Binding, len(ch.Bindings))}
		seen := make(map[Binding]int, len(ch.Bindings))
		for j, b := range ch.Bindings {
			bf := fmt.Sprintf("%s.Bindings[%d]", field, j)
			nb, err := normalizeBinding(b)
			if err != nil {
				return nil, &ConfigError{Field: bf + err.Field, Reason: err.Reason}
			}
			if k, dup := seen[nb]; dup {
				// The server collapses identical bindings onto one id (§2.3).
				return nil, &ConfigError{Field: bf, Reason: fmt.Sprintf("duplicates %s.Bindings[%d]", field, k)}
			}
			seen[nb] = j
			out[i].Bindings[j] = nb
		}
	}
	return out, nil
}

func normalizeBinding(b Binding) (Binding, *ConfigError) {
	switch ev := strings.ToUpper(strings.TrimSpace(b.Event)); ev {
	case "", "*":
		b.Event = "*"
	case "INSERT", "UPDATE", "DELETE":
		b.Event = ev
	default:
		return b, &ConfigError{Field: ".Event", Reason: fmt.Sprintf(`must be "*", "INSERT", "UPDATE" or "DELETE", got %q`, b.Event)}
	}
	b.Schema = strings.TrimSpace(b.Schema)
	b.Table = strings.TrimSpace(b.Table)
	b.Filter = strings.TrimSpace(b.Filter)
	if b.Schema == "" && b.Table == "" {
		return b, &ConfigError{Field: ".Schema", Reason: "Schema or Table is required"}
	}
	if b.Filter != "" && (b.Schema == "" || b.Table == "") {
		// The server only parses a filter together with schema and table (§2.2).
		return b, &ConfigError{Field: ".Filter", Reason: "a filter requires both Schema and Table"}
	}
	return b, nil
}

// socketURL derives the websocket URL with apikey and vsn query parameters.
func socketURL(raw, apikey, vsn string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("must not be empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "ws", "wss":
	default:
		return nil, fmt.Errorf("scheme must be http, https, ws or wss, got %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("missing host in %q", redactURL(u))
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("must not have a fragment")
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		if strings.ToLower(u.Scheme) == "https" {
			u.Scheme = "wss"
		} else {
			u.Scheme = "ws"
		}
		u.Path = strings.TrimRight(u.Path, "/") + "/realtime/v1/websocket"
		u.RawPath = ""
	case "ws", "wss":
		u.Scheme = strings.ToLower(u.Scheme)
		if !strings.HasSuffix(u.Path, "/websocket") {
			return nil, fmt.Errorf("a %s URL must end in /websocket, got path %q", u.Scheme, u.Path)
		}
	}
	q := u.Query()
	q.Set("apikey", apikey)
	q.Set("vsn", vsn)
	u.RawQuery = q.Encode()
	return u, nil
}

// redactURL renders u for logs with the daemon's one URL redactor: the
// socket URL carries the API key in its query.
func redactURL(u *url.URL) string { return logging.RedactURL(u.String()) }
