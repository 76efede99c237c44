package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const testKey = "service-role-key-for-tests"

// writeFile writes content to a temp file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// loadNoSearch loads like Load but never looks at the default search paths.
func loadNoSearch(t *testing.T, path string, environ ...string) (*Config, error) {
	t.Helper()
	return load(path, environ, nil)
}

// examplePath returns config.example.yaml at the module root.
func examplePath(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "config.example.yaml")
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "go.mod not found above the test directory")
		dir = parent
	}
}

func TestLoad_Example(t *testing.T) {
	path := examplePath(t)

	t.Run("EqualsDefaults", func(t *testing.T) {
		cfg, err := loadNoSearch(t, path)
		require.NoError(t, err)
		want := Default()
		want.File = path
		require.Equal(t, want, cfg)

		// Only the two required settings are missing.
		err = cfg.Validate()
		require.Error(t, err)
		require.ElementsMatch(t, []string{
			"supabase.url: required (or set SUPABASE_URL)",
			"supabase.service_role_key: required (or set SUPABASE_SECRET_KEY or SUPABASE_SERVICE_ROLE_KEY)",
		}, strings.Split(err.Error(), "\n"))
	})

	t.Run("ValidatesWithSupabaseEnv", func(t *testing.T) {
		cfg, err := loadNoSearch(t, path,
			"SUPABASE_URL=https://abc.supabase.co", "SUPABASE_SERVICE_ROLE_KEY="+testKey)
		require.NoError(t, err)
		require.NoError(t, cfg.Validate())
		require.Equal(t, "wss://abc.supabase.co/realtime/v1/websocket", cfg.Realtime.URL)
		require.Equal(t, testKey, cfg.Supabase.ServiceRoleKey.Value())
	})

	t.Run("DocumentsEveryKey", func(t *testing.T) {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		var root map[string]any
		require.NoError(t, yaml.Unmarshal(data, &root))
		var leaves []string
		var collect func(prefix string, m map[string]any)
		collect = func(prefix string, m map[string]any) {
			for k, v := range m {
				if sub, ok := v.(map[string]any); ok {
					collect(prefix+k+".", sub)
				} else {
					leaves = append(leaves, prefix+k)
				}
			}
		}
		collect("", root)
		require.ElementsMatch(t, Keys(), leaves, "config.example.yaml must show every key")
		for _, k := range Keys() {
			require.Contains(t, string(data), EnvName(k), "config.example.yaml must name the env var of %s", k)
		}
	})
}

func TestLoad_EnvOnlyOverrideOfNestedKeys(t *testing.T) {
	// viper's known trap: Unmarshal ignores env values of keys it does not
	// know. Here no file mentions these keys; only the environment does.
	cfg, err := loadNoSearch(t, "",
		"MESHHOOK_ALERTS_WATCH_STATUSES_SUCCEEDED=done, ok ,",
		"MESHHOOK_ALERTS_SENDER_RETRY_MAX=1h",
		"MESHHOOK_ALERTS_SENDER_ALLOW_INSECURE_HTTP=true",
		"MESHHOOK_ALERTS_REALTIME_BUFFER_SIZE=7",
		"MESHHOOK_ALERTS_SECRETS_ENCRYPTION_KEY=secret",
		"MESHHOOK_ALERTS_SECRETS_PREVIOUS_KEYS=k1,k2",
		"MESHHOOK_ALERTS_LOG_LEVEL=", // empty: ignored
	)
	require.NoError(t, err)
	require.Equal(t, []string{"done", "ok"}, cfg.Watch.Statuses.Succeeded)
	require.Equal(t, []string{"failed"}, cfg.Watch.Statuses.Failed, "siblings keep defaults")
	require.Equal(t, time.Hour, cfg.Sender.RetryMax)
	require.True(t, cfg.Sender.AllowInsecureHTTP)
	require.Equal(t, 7, cfg.Realtime.BufferSize)
	require.Equal(t, Secret("secret"), cfg.Secrets.EncryptionKey)
	require.Equal(t, []Secret{"k1", "k2"}, cfg.Secrets.PreviousKeys)
	require.Equal(t, "info", cfg.Log.Level)
	require.Equal(t, "", cfg.File)
}

func TestLoad_Layering(t *testing.T) {
	path := writeFile(t, "config.yaml", `
supabase:
  url: https://file.example.com
sender:
  workers: 3
  request_timeout: 3s
watch:
  statuses:
    failed: [error, crashed]
log:
  level:   # empty keeps the default
`)
	cfg, err := loadNoSearch(t, path, "MESHHOOK_ALERTS_SENDER_WORKERS=5")
	require.NoError(t, err)
	require.Equal(t, path, cfg.File)
	require.Equal(t, "https://file.example.com", cfg.Supabase.URL, "file over default")
	require.Equal(t, 5, cfg.Sender.Workers, "env over file")
	require.Equal(t, 3*time.Second, cfg.Sender.RequestTimeout)
	require.Equal(t, []string{"error", "crashed"}, cfg.Watch.Statuses.Failed)
	require.Equal(t, []string{"succeeded"}, cfg.Watch.Statuses.Succeeded, "partial section keeps defaults")
	require.Equal(t, 10000, cfg.Sender.QueueSize)
	require.Equal(t, "info", cfg.Log.Level)
	require.Equal(t, "wss://file.example.com/realtime/v1/websocket", cfg.Realtime.URL)
	require.Equal(t, DefaultUserAgent(), cfg.Sender.UserAgent)
}

func TestLoad_SupabaseEnvNames(t *testing.T) {
	t.Run("PlainNames", func(t *testing.T) {
		cfg, err := loadNoSearch(t, "", "SUPABASE_URL=http://127.0.0.1:54321", "SUPABASE_SERVICE_ROLE_KEY=plain")
		require.NoError(t, err)
		require.Equal(t, "http://127.0.0.1:54321", cfg.Supabase.URL)
		require.Equal(t, "plain", cfg.Supabase.ServiceRoleKey.Value())
		require.Equal(t, "ws://127.0.0.1:54321/realtime/v1/websocket", cfg.Realtime.URL)
		require.NoError(t, cfg.Validate())
	})
	t.Run("PrefixedWin", func(t *testing.T) {
		path := writeFile(t, "c.yaml", "supabase:\n  url: https://file.example.com\n")
		cfg, err := loadNoSearch(t, path,
			"MESHHOOK_ALERTS_SUPABASE_URL=https://prefixed.example.com",
			"SUPABASE_URL=https://plain.example.com",
			"SUPABASE_SERVICE_ROLE_KEY=plain",
			"MESHHOOK_ALERTS_SUPABASE_SERVICE_ROLE_KEY=prefixed",
		)
		require.NoError(t, err)
		require.Equal(t, "https://prefixed.example.com", cfg.Supabase.URL)
		require.Equal(t, "prefixed", cfg.Supabase.ServiceRoleKey.Value())
	})
	t.Run("PlainOverFile", func(t *testing.T) {
		path := writeFile(t, "c.yaml", "supabase:\n  url: https://file.example.com\n")
		cfg, err := loadNoSearch(t, path, "SUPABASE_URL=https://plain.example.com")
		require.NoError(t, err)
		require.Equal(t, "https://plain.example.com", cfg.Supabase.URL)
	})
}

func TestLoad_Errors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		environ []string
		want    []string // substrings of the error
	}{
		{
			name: "UnknownKey",
			yaml: "sender:\n  workers: 2\n  worker: 3\n",
			want: []string{`c.yaml:3: unknown key "sender.worker"`},
		},
		{
			name: "UnknownKeysAllReported",
			yaml: "supabse:\n  url: x\nwatch:\n  statuses:\n    done: [x]\n",
			want: []string{`c.yaml:1: unknown key "supabse"`, `c.yaml:5: unknown key "watch.statuses.done"`},
		},
		{
			name: "DottedKey",
			yaml: "supabase.url: https://x.example.com\n",
			want: []string{`unknown key "supabase.url"`},
		},
		{
			name: "MalformedYAML",
			yaml: "supabase:\n  url: https://x\n   schema: public\n",
			want: []string{"parse config file", "c.yaml", "line 3"},
		},
		{
			name: "TabIndent",
			yaml: "supabase:\n\turl: x\n",
			want: []string{"c.yaml", "line 2"},
		},
		{
			name: "TopLevelNotMapping",
			yaml: "- a\n- b\n",
			want: []string{"c.yaml:1: top level must be a mapping"},
		},
		{
			name: "SectionNotMapping",
			yaml: "supabase: https://x.example.com\n",
			want: []string{"c.yaml:1: supabase: expected a mapping, got a single value"},
		},
		{
			name: "ListForScalar",
			yaml: "sender:\n  workers: [1, 2]\n",
			want: []string{"c.yaml:2: sender.workers: expected a single value, got a list"},
		},
		{
			name: "MappingForList",
			yaml: "watch:\n  statuses:\n    failed: {a: b}\n",
			want: []string{"c.yaml:3: watch.statuses.failed: expected a single value, got a mapping"},
		},
		{
			name: "BareNumberDuration",
			yaml: "realtime:\n  heartbeat_interval: 25\n",
			want: []string{"realtime.heartbeat_interval", `want a Go duration such as "25s"`},
		},
		{
			name: "BadDurationString",
			yaml: "sender:\n  max_age: 1 day\n",
			want: []string{"sender.max_age", `invalid duration "1 day"`},
		},
		{
			name: "BadInt",
			yaml: "sender:\n  workers: many\n",
			want: []string{"sender.workers"},
		},
		{
			name: "FractionalInt",
			yaml: "sender:\n  workers: 1.5\n",
			want: []string{"sender.workers: must be a whole number, got 1.5"},
		},
		{
			name: "BadIntMessage",
			yaml: "sender:\n  workers: many\n  max_attempts: x\n",
			want: []string{`sender.workers: cannot parse "many" as int`, `sender.max_attempts: cannot parse "x" as int`},
		},
		{
			name:    "BadEnvBool",
			environ: []string{"MESHHOOK_ALERTS_SENDER_ALLOW_INSECURE_HTTP=maybe"},
			want:    []string{"sender.allow_insecure_http"},
		},
		{
			name:    "BadEnvDuration",
			environ: []string{"MESHHOOK_ALERTS_ALERTS_TIMER_TICK=10"},
			want:    []string{"alerts.timer_tick", "invalid duration"},
		},
		{
			name:    "UnknownEnv",
			environ: []string{"MESHHOOK_ALERTS_SENDER_WORKER=3", "MESHHOOK_ALERTS_SUPABASE_URI=x", "OTHER_THING=1"},
			want:    []string{"MESHHOOK_ALERTS_SENDER_WORKER", "MESHHOOK_ALERTS_SUPABASE_URI", "unknown variable"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, "c.yaml", tt.yaml)
			}
			_, err := loadNoSearch(t, path, tt.environ...)
			require.Error(t, err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "OTHER_THING")
		})
	}
}

func TestLoad_ZeroDurationNumber(t *testing.T) {
	path := writeFile(t, "c.yaml", "alerts:\n  catchup_overlap: 0\n")
	cfg, err := loadNoSearch(t, path)
	require.NoError(t, err)
	require.Zero(t, cfg.Alerts.CatchupOverlap)
}

func TestLoad_EmptyAndNullFiles(t *testing.T) {
	for name, content := range map[string]string{
		"Empty":        "",
		"CommentsOnly": "# nothing here\n",
		"Null":         "~\n",
		"NullSections": "supabase:\nsender:\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, "c.yaml", content)
			cfg, err := loadNoSearch(t, path)
			require.NoError(t, err)
			want := Default()
			want.File = path
			require.Equal(t, want, cfg)
		})
	}
}

func TestLoad_FileResolution(t *testing.T) {
	good := writeFile(t, "good.yaml", "sender:\n  workers: 9\n")
	missing := filepath.Join(t.TempDir(), "missing.yaml")

	t.Run("ExplicitMissing", func(t *testing.T) {
		_, err := load(missing, nil, []string{good})
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.Contains(t, err.Error(), missing)
	})
	t.Run("ExplicitDirectory", func(t *testing.T) {
		dir := t.TempDir()
		_, err := load(dir, nil, nil)
		require.ErrorContains(t, err, "is a directory")
	})
	t.Run("EnvVariable", func(t *testing.T) {
		cfg, err := load("", []string{EnvConfigFile + "=" + good}, nil)
		require.NoError(t, err)
		require.Equal(t, good, cfg.File)
		require.Equal(t, 9, cfg.Sender.Workers)
	})
	t.Run("EnvVariableMissing", func(t *testing.T) {
		_, err := load("", []string{EnvConfigFile + "=" + missing}, []string{good})
		require.ErrorIs(t, err, fs.ErrNotExist)
	})
	t.Run("FlagOverEnvVariable", func(t *testing.T) {
		other := writeFile(t, "other.yaml", "sender:\n  workers: 2\n")
		cfg, err := load(other, []string{EnvConfigFile + "=" + good}, nil)
		require.NoError(t, err)
		require.Equal(t, 2, cfg.Sender.Workers)
	})
	t.Run("SearchFirstExisting", func(t *testing.T) {
		cfg, err := load("", nil, []string{missing, good})
		require.NoError(t, err)
		require.Equal(t, good, cfg.File)
		require.Equal(t, 9, cfg.Sender.Workers)
	})
	t.Run("SearchNoneFound", func(t *testing.T) {
		cfg, err := load("", nil, []string{missing})
		require.NoError(t, err)
		require.Equal(t, Default(), cfg)
	})
}

func TestRealtimeURLFromSupabase(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "https://abc.supabase.co", want: "wss://abc.supabase.co/realtime/v1/websocket"},
		{in: "https://abc.supabase.co/", want: "wss://abc.supabase.co/realtime/v1/websocket"},
		{in: "http://127.0.0.1:54321", want: "ws://127.0.0.1:54321/realtime/v1/websocket"},
		{in: "https://gw.example.com/supabase/", want: "wss://gw.example.com/supabase/realtime/v1/websocket"},
		{in: "https://u:p@abc.supabase.co?x=1#f", want: "wss://abc.supabase.co/realtime/v1/websocket"},
		{in: "", err: "scheme"},
		{in: "ftp://x", err: `scheme "ftp"`},
		{in: "https://", err: "no host"},
		{in: "://bad", err: "missing protocol scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := RealtimeURLFromSupabase(tt.in)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestKeysAndEnvNames(t *testing.T) {
	keys := Keys()
	require.Len(t, keys, 85)
	require.Equal(t, "supabase.url", keys[0])
	require.Equal(t, "MESHHOOK_ALERTS_WATCH_STATUSES_SUCCEEDED", EnvName("watch.statuses.succeeded"))
	seen := map[string]bool{}
	for _, k := range keys {
		require.False(t, seen[EnvName(k)], "env name collision for %s", k)
		seen[EnvName(k)] = true
	}
}

func TestLoad_EveryKeyFromEnv(t *testing.T) {
	// Each key, set only through its environment variable, reaches Config.
	var environ []string
	want := map[string]any{}
	walk(reflect.ValueOf(Default()).Elem(), "", func(key string, f reflect.Value) {
		var env string
		switch {
		case f.Type() == reflect.TypeFor[time.Duration]():
			env, want[key] = "7m", 7*time.Minute
		case f.Type() == reflect.TypeFor[Secret]():
			env, want[key] = "sek-"+key, Secret("sek-"+key)
		case f.Kind() == reflect.String:
			env, want[key] = "v_"+key, "v_"+key
		case f.Kind() == reflect.Int:
			env, want[key] = "77", 77
		case f.Kind() == reflect.Bool:
			env, want[key] = "true", true
		case f.Type() == reflect.TypeFor[[]string]():
			env, want[key] = "a,"+key, []string{"a", key}
		case f.Type() == reflect.TypeFor[[]Secret]():
			env, want[key] = "s1,s2", []Secret{"s1", "s2"}
		default:
			t.Fatalf("no test value for %s (%s)", key, f.Type())
		}
		environ = append(environ, EnvName(key)+"="+env)
	})
	require.Len(t, want, len(Keys()))

	cfg, err := loadNoSearch(t, "", environ...)
	require.NoError(t, err)
	walk(reflect.ValueOf(cfg).Elem(), "", func(key string, f reflect.Value) {
		require.Equal(t, want[key], f.Interface(), key)
	})
}
