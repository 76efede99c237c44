package realtime

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// tokenRefreshLead is the latest point before exp at which a token is
	// refreshed; tokens are refreshed at 80% of their lifetime if earlier.
	tokenRefreshLead = time.Minute
	// tokenRefreshFraction is the share of the lifetime after which a token
	// is refreshed.
	tokenRefreshFraction = 0.8
	// minTokenRefreshDelay keeps an already (nearly) expired token from
	// causing a refresh loop.
	minTokenRefreshDelay = 500 * time.Millisecond
	// tokenRetryDelay is the wait after a failed refresh, or after the
	// provider returned the same expiring token again.
	tokenRetryDelay = 5 * time.Second
)

// tokenRefreshAt returns when tok should be replaced, or the zero time if it
// is not a JWT with an exp claim. The signature is not verified: the token
// is only inspected for scheduling, the server does the verification.
func tokenRefreshAt(tok string, now time.Time) time.Time {
	exp, iat, ok := jwtTimes(tok)
	if !ok {
		return time.Time{}
	}
	base := now
	if !iat.IsZero() && iat.Before(exp) {
		base = iat
	}
	at := base.Add(time.Duration(float64(exp.Sub(base)) * tokenRefreshFraction))
	if early := exp.Add(-tokenRefreshLead); early.After(now) && early.Before(at) {
		at = early
	}
	if floor := now.Add(minTokenRefreshDelay); at.Before(floor) {
		at = floor
	}
	return at
}

// jwtTimes extracts exp and iat (zero if absent) from an unverified JWT.
func jwtTimes(tok string) (exp, iat time.Time, ok bool) {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		return time.Time{}, time.Time{}, false
	}
	e, err := claims.GetExpirationTime()
	if err != nil || e == nil {
		return time.Time{}, time.Time{}, false
	}
	if i, err := claims.GetIssuedAt(); err == nil && i != nil {
		iat = i.Time
	}
	return e.Time, iat, true
}
