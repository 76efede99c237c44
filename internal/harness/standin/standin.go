// Package standin assembles the local Supabase stand-in used by the demo and
// the end-to-end tests: a throwaway PostgreSQL cluster prepared like a
// Supabase project, the PostgREST subset at /rest/v1/, the Realtime server
// at /realtime/v1/websocket, fed by logical decoding of the database, and
// Supabase Auth at /auth/v1/ (asymmetric JWT signing keys and their JWKS,
// password sign-in for seeded users), all behind an API gateway that takes
// the legacy JWT API keys and the new sb_publishable_/sb_secret_ keys.
//
// It is a test and demo tool, not part of the daemon: the daemon talks to it
// exactly as it talks to a hosted Supabase project.
package standin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/harness/authtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
	"github.com/meshhook/meshhook-alerts/supabase/supabasetest"
)

// Options configures Start.
type Options struct {
	// Addr is where the HTTP server listens; default 127.0.0.1:0.
	Addr string
	// DatabaseURL is a superuser URL of an existing, prepared database. When
	// empty, Start runs a new cluster and prepares a database in it.
	DatabaseURL string
	// MeshHook adds MeshHook's core tables when Start prepares the database.
	MeshHook bool
	// Realtime tunes the Realtime server (JWTSecret is always pgtest.JWTSecret).
	// Its postgres_changes limits default to Realtime's replication poller
	// (polls of up to 100 changes; 100ms interval, 500ms when idle) and no
	// event quota: set Realtime.MaxEventsPerSecond (hosted Free 100, Pro
	// 500) to have polls skipped silently over it, as Realtime does, and
	// read Realtime.SkippedChanges() for what was lost. RealtimeLimitFlags
	// sets them from flags or the environment.
	Realtime realtimetest.Options
	// Wrap, if set, wraps the stand-in's HTTP handler (REST, Realtime and
	// the index page), for example to count requests. It must hand the
	// ResponseWriter on as it got it: Realtime hijacks it for websockets.
	Wrap func(http.Handler) http.Handler
	// TokenTTL is the lifetime of the access tokens Auth issues; defaults
	// to authtest.DefaultTokenTTL (an hour).
	TokenTTL time.Duration
	// SchemaCacheTTL is RESTOptions.SchemaCacheTTL of the REST server:
	// zero for its default (a second); benchmarks set it long, as hosted
	// PostgREST keeps its schema cache until the schema changes.
	SchemaCacheTTL time.Duration
	// Diagnostics, when Start runs a new cluster, preloads
	// pg_stat_statements and creates it and pg_walinspect in the database,
	// for benchmarks that rank statements and count WAL records.
	Diagnostics bool
	// RealtimeKeyTTL is the lifetime of the JWT the gateway mints for a
	// Realtime socket opened with a new API key; defaults to
	// authtest.DefaultRealtimeTTL (24 hours).
	RealtimeKeyTTL time.Duration
	Logger         *zap.Logger
}

// The application_name of the stand-in's connections: the caller's Pool,
// the REST server's (PostgREST's) pool and the Realtime server's pool and
// replication connection.
const (
	AppName     = "standin"
	AppREST     = "standin_rest"
	AppRealtime = "standin_realtime"
)

// StandIn is a running stand-in.
type StandIn struct {
	URL            string // http://host:port: the "Supabase URL"
	DatabaseURL    string // superuser postgres URL
	ServiceRoleKey string // legacy service_role JWT
	AnonKey        string // legacy anon JWT
	SecretKey      string // sb_secret_…
	PublishableKey string // sb_publishable_…
	// Pool is a superuser pool on the database for the caller (seeding,
	// load); its connections' application_name is AppName. REST and
	// Realtime have pools of their own, named AppREST and AppRealtime, so
	// that a benchmark can tell their backends apart in pg_stat_activity.
	Pool     *pgxpool.Pool
	REST     *supabasetest.REST
	Realtime *realtimetest.Server
	// Auth signs users' access tokens with the project's asymmetric keys
	// (Auth.Keys()); seed users with Auth.AddUser.
	Auth    *authtest.Auth
	Gateway *authtest.Gateway

	cluster  *pgtest.Cluster
	restPool *pgxpool.Pool
	rtPool   *pgxpool.Pool
	cdc      *realtimetest.CDC
	http     *http.Server
	done     chan error
}

// Start brings the stand-in up. Close it when done.
func Start(ctx context.Context, opts Options) (_ *StandIn, err error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &StandIn{ServiceRoleKey: pgtest.ServiceRoleKey(), AnonKey: pgtest.AnonKey(), done: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.DatabaseURL = opts.DatabaseURL
	if s.DatabaseURL == "" {
		s.cluster, err = pgtest.Start(ctx, pgtest.StartOptions{Logf: func(f string, a ...any) { log.Debug(fmt.Sprintf(f, a...)) },
			StatStatements: opts.Diagnostics})
		if err != nil {
			return nil, err
		}
		migs, err := pgtest.RepoMigrations()
		if err != nil {
			return nil, err
		}
		if s.DatabaseURL, err = s.cluster.CreateDatabase(ctx, "postgres_standin", opts.MeshHook, migs); err != nil {
			return nil, err
		}
	}
	if s.Pool, err = openPool(ctx, s.DatabaseURL, AppName); err != nil {
		return nil, err
	}
	if s.restPool, err = openPool(ctx, s.DatabaseURL, AppREST); err != nil {
		return nil, err
	}
	if s.rtPool, err = openPool(ctx, s.DatabaseURL, AppRealtime); err != nil {
		return nil, err
	}
	if opts.Diagnostics && s.cluster != nil {
		if _, err := s.Pool.Exec(ctx, `create extension if not exists pg_stat_statements; create extension if not exists pg_walinspect`); err != nil {
			return nil, fmt.Errorf("standin: diagnostics extensions: %w", err)
		}
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("standin: listen: %w", err)
	}
	s.URL = "http://" + ln.Addr().String()
	s.Auth = authtest.NewAuth(authtest.AuthOptions{
		LegacySecret: pgtest.JWTSecret, Issuer: s.URL + "/auth/v1", TokenTTL: opts.TokenTTL,
	})
	s.Gateway = authtest.NewGateway(authtest.GatewayOptions{Keys: s.Auth.Keys(), RealtimeTTL: opts.RealtimeKeyTTL})
	s.SecretKey, s.PublishableKey = s.Gateway.SecretKey(), s.Gateway.PublishableKey()
	jwks := s.Auth.Keys().Lookup

	s.REST = supabasetest.NewREST(s.restPool, supabasetest.RESTOptions{JWTSecret: pgtest.JWTSecret, JWKS: jwks, Logger: log.Named("rest"),
		SchemaCacheTTL: opts.SchemaCacheTTL})
	rtOpts := opts.Realtime
	rtOpts.JWTSecret = pgtest.JWTSecret
	rtOpts.JWKS = jwks
	if rtOpts.Logger == nil {
		rtOpts.Logger = log.Named("realtime")
	}
	if rtOpts.DB == nil {
		rtOpts.DB = s.rtPool
	}
	s.Realtime = realtimetest.NewServer(rtOpts)
	if s.cdc, err = realtimetest.StartCDC(ctx, s.DatabaseURL, s.Realtime, realtimetest.CDCOptions{Logger: log.Named("cdc")}); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("standin: start change data capture: %w", err)
	}

	mux := http.NewServeMux()
	auth := http.StripPrefix("/auth/v1", s.Auth.Handler())
	mux.Handle("/auth/v1/.well-known/jwks.json", s.Gateway.Open(auth))
	mux.Handle("/auth/v1/", s.Gateway.HTTP(auth))
	mux.Handle("/rest/v1/", s.Gateway.HTTP(http.StripPrefix("/rest/v1", s.REST)))
	mux.Handle("/realtime/v1/websocket", s.Gateway.Realtime(s.Realtime))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("meshhook-alerts local Supabase stand-in: /rest/v1/, /realtime/v1/websocket and /auth/v1/\n"))
	})
	var h http.Handler = mux
	if opts.Wrap != nil {
		h = opts.Wrap(mux)
	}
	s.http = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.done <- s.http.Serve(ln) }()
	log.Info("stand-in ready", zap.String("url", s.URL))
	return s, nil
}

// Close stops everything Start started.
func (s *StandIn) Close() error {
	var errs []error
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
		if s.Realtime != nil {
			s.Realtime.Close()
		}
		if err := <-s.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	if s.cdc != nil {
		s.cdc.Close()
	}
	for _, p := range []*pgxpool.Pool{s.Pool, s.restPool, s.rtPool} {
		if p != nil {
			p.Close()
		}
	}
	if s.cluster != nil {
		if err := s.cluster.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// openPool opens a pool on dbURL whose connections carry application_name
// app.
func openPool(ctx context.Context, dbURL, app string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(withAppName(dbURL, app))
	if err != nil {
		return nil, fmt.Errorf("standin: open database: %w", err)
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("standin: open database: %w", err)
	}
	return p, nil
}

// withAppName sets application_name in a postgres URL.
func withAppName(dbURL, app string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return dbURL
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String()
}
