package supabasetest

import (
	"crypto"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// anonRole is Supabase's db-anon-role.
const anonRole = "anon"

// jwtLeeway is PostgREST's allowed clock skew for exp/nbf/iat.
const jwtLeeway = 30 * time.Second

// KeyLookup finds the public key a project publishes in its JWKS under
// kid for the algorithm alg (ES256, RS256), the way PostgREST verifies
// tokens signed with a project's asymmetric JWT signing keys.
type KeyLookup func(kid, alg string) (crypto.PublicKey, bool)

// jwtKeys verifies JWTs: HS256/384/512 with the legacy secret, ES256 and
// RS256 with the keys of the JWKS when there is one.
type jwtKeys struct {
	secret []byte
	jwks   KeyLookup
}

func (k jwtKeys) methods() []string {
	m := []string{"HS256", "HS384", "HS512"}
	if k.jwks != nil {
		m = append(m, "ES256", "RS256")
	}
	return m
}

func (k jwtKeys) keyfunc(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		return k.secret, nil
	}
	kid, _ := t.Header["kid"].(string)
	if pub, ok := k.jwks(kid, t.Method.Alg()); ok {
		return pub, nil
	}
	return nil, jwt.ErrTokenUnverifiable
}

// authResult is the database role and the claims a request runs with.
type authResult struct {
	Role       string
	ClaimsJSON string // request.jwt.claims (with "role" set)
	Sub        string
}

// gatewayError is an API gateway (Kong) style error: {"message","hint"}.
func gatewayError(message, hint string) *response {
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
		Hint    string `json:"hint"`
	}{message, hint})
	return &response{
		status: http.StatusUnauthorized,
		header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		body:   b,
	}
}

// checkAPIKey does what Supabase's gateway does before PostgREST sees the
// request: an apikey header (or query parameter) must be present and be a
// key the project issued (here: a JWT signed with the JWT secret, or with a
// key of the JWKS: what a gateway in front forwards for the new sb_ keys).
func checkAPIKey(keys jwtKeys, r *http.Request) (string, *response) {
	key := r.Header.Get("apikey")
	if key == "" {
		key = r.URL.Query().Get("apikey")
	}
	if key == "" {
		return "", gatewayError("No API key found in request", "No `apikey` request header or url param was found.")
	}
	p := jwt.NewParser(jwt.WithValidMethods(keys.methods()), jwt.WithoutClaimsValidation())
	if _, err := p.Parse(key, keys.keyfunc); err != nil {
		return "", gatewayError("Invalid API key", "Double check your Supabase `anon` or `service_role` API key.")
	}
	return key, nil
}

// bearerToken extracts the token of "Authorization: Bearer <token>" like
// wai's extractBearerAuth; ok is false for other schemes.
func bearerToken(h string) (string, bool) {
	i := strings.IndexAny(h, " \t")
	if i < 0 {
		i = len(h)
	}
	if !strings.EqualFold(h[:i], "bearer") {
		return "", false
	}
	return strings.TrimLeft(h[i:], " \t"), true
}

// authenticate verifies the JWT like PostgREST (PostgREST.Auth.Jwt) and
// returns the role and claims to run the request with.
func authenticate(keys jwtKeys, token string, now time.Time) (*authResult, *apiError) {
	if token == "" {
		return nil, errJWT("PGRST301", "Empty JWT is sent in Authorization header", nil)
	}
	if n := strings.Count(token, ".") + 1; n != 3 {
		return nil, errJWT("PGRST301", "Expected 3 parts in JWT; got "+strconv.Itoa(n), nil)
	}
	p := jwt.NewParser(jwt.WithValidMethods(keys.methods()), jwt.WithoutClaimsValidation(), jwt.WithJSONNumber())
	claims := jwt.MapClaims{}
	if _, err := p.ParseWithClaims(token, claims, keys.keyfunc); err != nil {
		return nil, errJWT("PGRST301", "No suitable key or wrong key type", strp("None of the keys was able to decode the JWT"))
	}
	if e := validateClaims(claims, now); e != nil {
		return nil, e
	}
	role := anonRole
	if v, ok := claims["role"]; ok {
		switch rv := v.(type) {
		case string:
			role = rv
		default:
			b, _ := json.Marshal(rv)
			role = string(b)
		}
	}
	claims["role"] = role
	b, err := json.Marshal(map[string]any(claims))
	if err != nil {
		return nil, errJWT("PGRST303", "Parsing claims failed", nil)
	}
	res := &authResult{Role: role, ClaimsJSON: string(b)}
	if sub, ok := claims["sub"].(string); ok {
		res.Sub = sub
	}
	return res, nil
}

func claimSeconds(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, true
		}
		if f, err := n.Float64(); err == nil {
			return int64(f), true
		}
	case float64:
		return int64(n), true
	}
	return 0, false
}

// validateClaims checks exp, nbf, iat and aud in PostgREST's order.
func validateClaims(c jwt.MapClaims, now time.Time) *apiError {
	leeway := int64(jwtLeeway / time.Second)
	t := now.Unix()
	checkTime := func(key, notNumber, failMsg string, bad func(int64) bool) *apiError {
		v, ok := c[key]
		if !ok || v == nil {
			return nil
		}
		n, ok := claimSeconds(v)
		if !ok {
			return errJWT("PGRST303", notNumber, nil)
		}
		if bad(n) {
			return errJWT("PGRST303", failMsg, nil)
		}
		return nil
	}
	if e := checkTime("exp", "The JWT 'exp' claim must be a number", "JWT expired", func(n int64) bool { return t-leeway > n }); e != nil {
		return e
	}
	if e := checkTime("nbf", "The JWT 'nbf' claim must be a number", "JWT not yet valid", func(n int64) bool { return t+leeway < n }); e != nil {
		return e
	}
	if e := checkTime("iat", "The JWT 'iat' claim must be a number", "JWT issued at future", func(n int64) bool { return t+leeway < n }); e != nil {
		return e
	}
	if v, ok := c["aud"]; ok && v != nil {
		switch a := v.(type) {
		case string:
		case []any:
			for _, x := range a {
				if _, ok := x.(string); !ok {
					return errJWT("PGRST303", "The JWT 'aud' claim must be a string or an array of strings", nil)
				}
			}
		default:
			return errJWT("PGRST303", "The JWT 'aud' claim must be a string or an array of strings", nil)
		}
	}
	return nil
}
