package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Defaults of UserTokensOptions.
const (
	// DefaultJWKSRefreshInterval is how often the JWKS is fetched again.
	// Supabase Auth serves it with Cache-Control: max-age=600.
	DefaultJWKSRefreshInterval = 10 * time.Minute
	// DefaultUnknownKIDInterval is the least time between two fetches of
	// the JWKS caused by tokens naming a key the cached set lacks.
	DefaultUnknownKIDInterval = 30 * time.Second
	// DefaultJWKSTimeout bounds one fetch of the JWKS.
	DefaultJWKSTimeout = 10 * time.Second
)

// JWKSPath is where Supabase Auth publishes a project's JWT signing keys,
// under the project URL.
const JWKSPath = "/auth/v1/.well-known/jwks.json"

// userAudience is the aud claim of Supabase Auth's access tokens.
const userAudience = "authenticated"

// UserTokensOptions configures NewUserTokens. At least one of JWKSURL and
// JWTSecret must be set.
type UserTokensOptions struct {
	// JWKSURL is the project's JWKS, <SUPABASE_URL>/auth/v1/.well-known/jwks.json:
	// access tokens signed with the project's asymmetric keys (ES256, the
	// default, or RS256) verify against it. Empty: none do.
	JWKSURL string
	// JWTSecret is the project's legacy JWT secret: HS256 access tokens
	// verify with it. Empty: none do.
	JWTSecret string
	// HTTPClient fetches the JWKS. Defaults to a client with a
	// DefaultJWKSTimeout timeout.
	HTTPClient *http.Client
	// RefreshInterval is how often the JWKS is fetched in the background,
	// following key rotation. Defaults to DefaultJWKSRefreshInterval.
	RefreshInterval time.Duration
	// UnknownKIDInterval spaces the fetches a token naming an unknown key
	// causes: a key just rotated in is found at once, while tokens with
	// forged key ids cost at most one fetch per interval, however many
	// arrive. Defaults to DefaultUnknownKIDInterval.
	UnknownKIDInterval time.Duration
	// Now is the clock for exp, nbf and iat; defaults to time.Now.
	Now func() time.Time
	// Logger receives JWKS fetch failures; nil discards them.
	Logger *zap.Logger
}

// UserTokens verifies Supabase users' access tokens: ES256 and RS256
// tokens against the project's JWKS (fetched at start, cached, refreshed
// periodically and when a token names a key the cache lacks, at a limited
// rate), HS256 tokens with the legacy JWT secret when one is configured. A
// valid token is unexpired (exp required, nbf and iat honoured, 30 s of
// clock skew), has aud "authenticated", role "authenticated" and a subject.
//
// It is safe for concurrent use. Close stops its background refresh.
type UserTokens struct {
	secret []byte
	kf     keyfunc.Keyfunc // nil without a JWKS URL
	now    func() time.Time
	cancel context.CancelFunc
}

// NewUserTokens returns a verifier. With a JWKS URL it fetches the JWKS
// before returning, bounded by the client's timeout; a failed fetch is
// logged, not returned (Auth may be briefly unreachable while the daemon
// starts), and retried when a token needs a key.
func NewUserTokens(opts UserTokensOptions) (*UserTokens, error) {
	if opts.JWKSURL == "" && opts.JWTSecret == "" {
		return nil, errors.New("api: UserTokens needs a JWKS URL or a JWT secret")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	u := &UserTokens{secret: []byte(opts.JWTSecret), now: opts.Now, cancel: func() {}}
	if opts.JWKSURL == "" {
		return u, nil
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: DefaultJWKSTimeout}
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultJWKSRefreshInterval
	}
	if opts.UnknownKIDInterval <= 0 {
		opts.UnknownKIDInterval = DefaultUnknownKIDInterval
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	fetchFailed := func(_ context.Context, err error) {
		log.Warn("fetching the project's JWKS failed; users' ES256/RS256 tokens verify against the keys fetched before",
			zap.String("url", opts.JWKSURL), zap.Error(err))
	}
	timeout := opts.HTTPClient.Timeout
	if timeout <= 0 {
		timeout = DefaultJWKSTimeout
	}
	remote, err := jwkset.NewStorageFromHTTP(opts.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client: opts.HTTPClient, Ctx: ctx, HTTPTimeout: timeout,
		NoErrorReturnFirstHTTPReq: true, RefreshErrorHandler: fetchFailed,
		RefreshInterval: opts.RefreshInterval,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("api: JWKS %s: %w", opts.JWKSURL, err)
	}
	// The HTTP client refreshes the set when a kid is unknown; its own
	// limiter waits for a token, so it is left unlimited and the waiting
	// is done (or rather refused) by gated, which never blocks a request
	// on the limiter.
	refreshing, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{opts.JWKSURL: remote},
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("api: JWKS %s: %w", opts.JWKSURL, err)
	}
	store := &gatedStorage{Storage: refreshing, cached: remote,
		limit: rate.NewLimiter(rate.Every(opts.UnknownKIDInterval), 1)}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: store})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("api: JWKS %s: %w", opts.JWKSURL, err)
	}
	u.kf, u.cancel = kf, cancel
	return u, nil
}

// Close stops the background refresh of the JWKS.
func (u *UserTokens) Close() { u.cancel() }

// gatedStorage reads keys from the cached JWKS and, for a kid it lacks,
// fetches the JWKS again only when the limiter has a token at once:
// requests never queue behind the limiter, and refreshes are serialized so
// that concurrent requests with a just-rotated key wait for one fetch.
type gatedStorage struct {
	jwkset.Storage                // refreshes on an unknown kid
	cached         jwkset.Storage // never fetches on a read
	limit          *rate.Limiter

	mu sync.Mutex
}

func (g *gatedStorage) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	jwk, err := g.cached.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) {
		return jwk, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// Another request may have fetched the key meanwhile.
	if jwk, err := g.cached.KeyRead(ctx, kid); !errors.Is(err, jwkset.ErrKeyNotFound) {
		return jwk, err
	}
	if !g.limit.Allow() {
		return jwkset.JWK{}, fmt.Errorf("%w %q (the JWKS was fetched moments ago)", jwkset.ErrKeyNotFound, kid)
	}
	return g.Storage.KeyRead(ctx, kid)
}

// errTokenKey says why no key verifies a token.
var errTokenKey = errors.New("no key of the project verifies it")

// keyFor returns the key that verifies t: the JWT secret for HS256, a key
// of the JWKS of the token's algorithm and kind for ES256 and RS256.
func (u *UserTokens) keyFor(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case "HS256":
			if len(u.secret) == 0 {
				return nil, fmt.Errorf("%w: it is signed with a JWT secret (HS256) and api.jwt_secret is not set", errTokenKey)
			}
			return u.secret, nil
		case "ES256", "RS256":
			if u.kf == nil {
				return nil, fmt.Errorf("%w: no JWKS is configured", errTokenKey)
			}
			if _, ok := t.Header["kid"].(string); !ok {
				return nil, fmt.Errorf("%w: it names no key (kid)", errTokenKey)
			}
			key, err := u.kf.KeyfuncCtx(ctx)(t)
			if err != nil {
				return nil, fmt.Errorf("%w: its key (kid) is not one of the %s keys in the project's JWKS", errTokenKey, t.Method.Alg())
			}
			// The key must be of the token's kind: an RSA key never
			// verifies an ES256 token and the reverse.
			switch key.(type) {
			case *ecdsa.PublicKey:
				if t.Method.Alg() == "ES256" {
					return key, nil
				}
			case *rsa.PublicKey:
				if t.Method.Alg() == "RS256" {
					return key, nil
				}
			}
			return nil, fmt.Errorf("%w: its key (kid) is not a %s key", errTokenKey, t.Method.Alg())
		}
		return nil, fmt.Errorf("%w: algorithm %s is not accepted", errTokenKey, t.Method.Alg())
	}
}

// methods are the signing algorithms accepted.
func (u *UserTokens) methods() []string {
	var m []string
	if u.kf != nil {
		m = append(m, "ES256", "RS256")
	}
	if len(u.secret) > 0 {
		m = append(m, "HS256")
	}
	return m
}

// Verify checks a Supabase access token and returns its subject (the
// user's id). The error says why a token is refused, without echoing it.
func (u *UserTokens) Verify(ctx context.Context, token string) (string, error) {
	if strings.Count(token, ".") != 2 {
		return "", errors.New("it is not a JWT")
	}
	// Name a refused algorithm before the parser refuses it blindly.
	if t, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{}); err == nil {
		alg := t.Method.Alg()
		switch {
		case alg == "HS256" && len(u.secret) == 0:
			return "", errors.New("it is signed with a JWT secret (HS256) and api.jwt_secret is not set")
		case !slices.Contains(u.methods(), alg):
			return "", fmt.Errorf("its algorithm %q is not one the project uses (%s)", alg, strings.Join(u.methods(), ", "))
		}
	}
	p := jwt.NewParser(
		jwt.WithValidMethods(u.methods()),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(userAudience),
		jwt.WithLeeway(jwtLeeway),
		jwt.WithTimeFunc(u.now),
	)
	claims := jwt.MapClaims{}
	var keyErr error
	keyFor := u.keyFor(ctx)
	_, err := p.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		key, err := keyFor(t)
		keyErr = err
		return key, err
	})
	switch {
	case keyErr != nil:
		return "", keyErr
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", errors.New("it has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "", errors.New("it is not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "", errors.New(`its audience (aud) is not "authenticated"`)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "", errors.New("it has no expiry or no audience")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "", errors.New("its signature does not verify with the project's keys")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "", errors.New("its algorithm or key is not one the project uses")
	case err != nil:
		return "", errors.New("it is malformed")
	}
	if role, _ := claims["role"].(string); role != userRole {
		return "", errors.New(`its role is not "authenticated"`)
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return "", errors.New("it has no subject")
	}
	return sub, nil
}
