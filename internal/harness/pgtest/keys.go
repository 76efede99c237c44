package pgtest

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTSecret is the HS256 secret the local stand-in signs and verifies JWTs with.
// It is a well-known test value, never a production secret.
const JWTSecret = "meshhook-alerts-local-standin-jwt-secret-0123456789"

// farFuture is the expiry of the long-lived API keys, like Supabase's.
var farFuture = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)

// ServiceRoleKey is a service_role API key for the stand-in.
func ServiceRoleKey() string {
	return sign(jwt.MapClaims{"role": "service_role", "iss": "supabase-standin", "exp": farFuture.Unix()})
}

// AnonKey is an anon API key for the stand-in.
func AnonKey() string {
	return sign(jwt.MapClaims{"role": "anon", "iss": "supabase-standin", "exp": farFuture.Unix()})
}

// UserToken is an access token for the authenticated user sub, valid for ttl
// (a negative ttl gives an expired token).
func UserToken(sub string, ttl time.Duration) string {
	now := time.Now()
	return sign(jwt.MapClaims{
		"role": "authenticated", "sub": sub, "aud": "authenticated",
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
}

// SignClaims signs arbitrary claims with JWTSecret.
func SignClaims(claims map[string]any) string { return sign(jwt.MapClaims(claims)) }

func sign(c jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(JWTSecret))
	if err != nil {
		panic(err) // HS256 with a static key cannot fail
	}
	return s
}
