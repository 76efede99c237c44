package authtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultTokenTTL is how long an access token lives, Supabase Auth's
// default JWT expiry (jwt_exp, 3600 s).
const DefaultTokenTTL = time.Hour

// AuthOptions configures an Auth.
type AuthOptions struct {
	// Keys signs access tokens. Defaults to NewKeySet().
	Keys *KeySet
	// LegacySecret verifies legacy HS256 tokens (signed with the project's
	// JWT secret) presented to GET /user, as Auth does while a project still
	// trusts its legacy key. Empty: only the asymmetric keys verify.
	LegacySecret string
	// Issuer is the iss claim of access tokens, <SUPABASE_URL>/auth/v1.
	Issuer string
	// TokenTTL is the access tokens' lifetime. Defaults to DefaultTokenTTL.
	TokenTTL time.Duration
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

// User is a seeded user of the stand-in's Auth.
type User struct {
	ID       string // uuid, the sub claim
	Email    string
	Password string
}

type session struct {
	id      string
	userID  string
	refresh string // the one refresh token that is still valid
}

// Auth is the stand-in's Supabase Auth: mount Handler at /auth/v1/ (behind
// the Gateway). It is safe for concurrent use.
type Auth struct {
	opts AuthOptions

	mu       sync.Mutex
	users    map[string]*User    // by id
	byEmail  map[string]*User    // by lower-cased email
	sessions map[string]*session // by id
	refresh  map[string]string   // refresh token → session id

	jwksFetches atomic.Int64
	userCalls   atomic.Int64
}

// NewAuth returns an Auth with no users.
func NewAuth(opts AuthOptions) *Auth {
	if opts.Keys == nil {
		opts.Keys = NewKeySet()
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Auth{
		opts: opts, users: map[string]*User{}, byEmail: map[string]*User{},
		sessions: map[string]*session{}, refresh: map[string]string{},
	}
}

// Keys returns the project's signing keys.
func (a *Auth) Keys() *KeySet { return a.opts.Keys }

// AddUser seeds a user who can sign in with email and password.
func (a *Auth) AddUser(u User) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := u
	a.users[u.ID] = &c
	a.byEmail[strings.ToLower(u.Email)] = &c
}

// DeleteUser removes a user and every session of theirs.
func (a *Auth) DeleteUser(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if u, ok := a.users[id]; ok {
		delete(a.byEmail, strings.ToLower(u.Email))
		delete(a.users, id)
	}
	for sid, s := range a.sessions {
		if s.userID == id {
			a.dropSessionLocked(sid)
		}
	}
}

// JWKSFetches counts the requests for the JWKS.
func (a *Auth) JWKSFetches() int64 { return a.jwksFetches.Load() }

// UserCalls counts the requests to GET /user.
func (a *Auth) UserCalls() int64 { return a.userCalls.Load() }

// Session is what a sign-in returns (Auth's AccessTokenResponse, without
// the user).
type Session struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	ExpiresAt    int64  `json:"expires_at"`
	RefreshToken string `json:"refresh_token"`
}

// SignIn signs a seeded user in as POST /token?grant_type=password does.
func (a *Auth) SignIn(email, password string) (Session, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.byEmail[strings.ToLower(email)]
	if !ok || u.Password != password {
		return Session{}, errors.New("invalid login credentials")
	}
	s := &session{id: newKID(), userID: u.ID}
	a.sessions[s.id] = s
	return a.issueLocked(s, u), nil
}

// SignOut ends the session an access token belongs to, as
// POST /logout?scope=local does.
func (a *Auth) SignOut(accessToken string) error {
	claims, err := a.verify(accessToken)
	if err != nil {
		return err
	}
	sid, _ := claims["session_id"].(string)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dropSessionLocked(sid)
	return nil
}

func (a *Auth) dropSessionLocked(sid string) {
	if s, ok := a.sessions[sid]; ok {
		delete(a.refresh, s.refresh)
		delete(a.sessions, sid)
	}
}

// issueLocked signs a new access token for the session and rotates its
// refresh token.
func (a *Auth) issueLocked(s *session, u *User) Session {
	now := a.opts.Now()
	exp := now.Add(a.opts.TokenTTL)
	claims := jwt.MapClaims{
		"iss": a.opts.Issuer, "sub": u.ID, "aud": "authenticated",
		"exp": exp.Unix(), "iat": now.Unix(),
		"email": u.Email, "phone": "",
		"app_metadata":  map[string]any{"provider": "email", "providers": []string{"email"}},
		"user_metadata": map[string]any{},
		"role":          "authenticated", "aal": "aal1",
		"amr":        []map[string]any{{"method": "password", "timestamp": now.Unix()}},
		"session_id": s.id, "is_anonymous": false,
	}
	delete(a.refresh, s.refresh)
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	s.refresh = hex.EncodeToString(b)
	a.refresh[s.refresh] = s.id
	return Session{
		AccessToken: a.opts.Keys.Current().Sign(claims), TokenType: "bearer",
		ExpiresIn: int(a.opts.TokenTTL / time.Second), ExpiresAt: exp.Unix(), RefreshToken: s.refresh,
	}
}

// verify checks an access token's signature (current and published keys,
// and the legacy secret when set) and expiry.
func (a *Auth) verify(token string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	p := jwt.NewParser(jwt.WithValidMethods([]string{"ES256", "RS256", "HS256"}), jwt.WithTimeFunc(a.opts.Now),
		jwt.WithExpirationRequired())
	_, err := p.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if t.Method.Alg() == "HS256" {
			if a.opts.LegacySecret == "" {
				return nil, errors.New("legacy JWT secret not in use")
			}
			return []byte(a.opts.LegacySecret), nil
		}
		kid, _ := t.Header["kid"].(string)
		if k, ok := a.opts.Keys.Lookup(kid, t.Method.Alg()); ok {
			return k, nil
		}
		return nil, fmt.Errorf("no key %q", kid)
	})
	return claims, err
}

// Handler serves the Auth routes under the prefix it is mounted at with
// http.StripPrefix (/auth/v1): GET /.well-known/jwks.json,
// POST /token?grant_type=password|refresh_token, GET /user, POST /logout.
func (a *Auth) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		a.jwksFetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=600")
		_, _ = w.Write(a.opts.Keys.JWKS())
	})
	mux.HandleFunc("POST /token", a.token)
	mux.HandleFunc("GET /user", a.user)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		authError(w, http.StatusNotFound, "not_found", "Not found")
	})
	return mux
}

func (a *Auth) token(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Email        string `json:"email"`
		Password     string `json:"password"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
		authError(w, http.StatusBadRequest, "bad_json", "Could not parse request body as JSON")
		return
	}
	switch r.URL.Query().Get("grant_type") {
	case "password":
		s, err := a.SignIn(body.Email, body.Password)
		if err != nil {
			authError(w, http.StatusBadRequest, "invalid_credentials", "Invalid login credentials")
			return
		}
		a.writeSession(w, s)
	case "refresh_token":
		a.mu.Lock()
		sid, ok := a.refresh[body.RefreshToken]
		var s Session
		if ok {
			sess := a.sessions[sid]
			s = a.issueLocked(sess, a.users[sess.userID])
		}
		a.mu.Unlock()
		if !ok {
			authError(w, http.StatusBadRequest, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
			return
		}
		a.writeSession(w, s)
	default:
		authError(w, http.StatusBadRequest, "validation_failed", "unsupported_grant_type")
	}
}

func (a *Auth) writeSession(w http.ResponseWriter, s Session) {
	claims, _ := a.verify(s.AccessToken)
	u, _ := a.userJSON(claims)
	out := struct {
		Session
		User json.RawMessage `json:"user"`
	}{s, u}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// requireUser authenticates a request as Auth's requireAuthentication
// does: a valid Bearer token whose user and session still exist.
func (a *Auth) requireUser(w http.ResponseWriter, r *http.Request) (jwt.MapClaims, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		authError(w, http.StatusUnauthorized, "no_authorization", "This endpoint requires a valid Bearer token")
		return nil, false
	}
	claims, err := a.verify(tok)
	if err != nil {
		authError(w, http.StatusForbidden, "bad_jwt", "invalid JWT: unable to parse or verify signature, "+err.Error())
		return nil, false
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		authError(w, http.StatusForbidden, "bad_jwt", "invalid claim: missing sub claim")
		return nil, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.users[sub]; !ok {
		authError(w, http.StatusForbidden, "user_not_found", "User from sub claim in JWT does not exist")
		return nil, false
	}
	if sid, ok := claims["session_id"].(string); ok && sid != "" {
		if _, ok := a.sessions[sid]; !ok {
			authError(w, http.StatusForbidden, "session_not_found", "Session from session_id claim in JWT does not exist")
			return nil, false
		}
	}
	return claims, true
}

func (a *Auth) user(w http.ResponseWriter, r *http.Request) {
	a.userCalls.Add(1)
	claims, ok := a.requireUser(w, r)
	if !ok {
		return
	}
	b, _ := a.userJSON(claims)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (a *Auth) userJSON(claims jwt.MapClaims) (json.RawMessage, error) {
	sub, _ := claims["sub"].(string)
	a.mu.Lock()
	u, ok := a.users[sub]
	a.mu.Unlock()
	if !ok {
		return json.RawMessage("null"), errors.New("no such user")
	}
	return json.Marshal(map[string]any{
		"id": u.ID, "aud": "authenticated", "role": "authenticated", "email": u.Email, "phone": "",
		"app_metadata":  map[string]any{"provider": "email", "providers": []string{"email"}},
		"user_metadata": map[string]any{}, "identities": []any{}, "is_anonymous": false,
		"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
	})
}

func (a *Auth) logout(w http.ResponseWriter, r *http.Request) {
	claims, ok := a.requireUser(w, r)
	if !ok {
		return
	}
	sid, _ := claims["session_id"].(string)
	sub, _ := claims["sub"].(string)
	scope := r.URL.Query().Get("scope")
	a.mu.Lock()
	for id, s := range a.sessions {
		switch {
		case scope == "local" && id == sid,
			scope == "others" && s.userID == sub && id != sid,
			(scope == "" || scope == "global") && s.userID == sub:
			a.dropSessionLocked(id)
		}
	}
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// authError writes Auth's error body: {"code","error_code","msg"}.
func authError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "error_code": code, "msg": msg})
}
