package config

import (
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// The kinds of Supabase API key KeyKind tells apart.
const (
	// KeySecret is a new secret key, sb_secret_…: full access, sent in the
	// apikey header only.
	KeySecret = "secret key (sb_secret_…)"
	// KeyServiceRoleJWT is a legacy service_role key: a JWT signed with the
	// project's legacy JWT secret, role "service_role".
	KeyServiceRoleJWT = "legacy service_role key (JWT)"
	// KeyUnrecognised is neither; Supabase will refuse it.
	KeyUnrecognised = "unrecognised (neither sb_secret_… nor a JWT with role service_role)"
)

// KeyKind tells which kind of API key supabase.service_role_key holds, for
// check-config. It reads a JWT's role without verifying it (only Supabase
// can); nothing of the key is returned.
func (s Supabase) KeyKind() string {
	k := s.ServiceRoleKey.Value()
	switch {
	case strings.HasPrefix(k, "sb_secret_"):
		return KeySecret
	case jwtRole(k) == "service_role":
		return KeyServiceRoleJWT
	}
	return KeyUnrecognised
}

// keyProblem says why the key cannot be the daemon's, or "" when it may be:
// the daemon reads every project's rows, so it needs a key that bypasses
// row-level security. Keys it cannot recognise are left to Supabase.
func (s Supabase) keyProblem() string {
	k := s.ServiceRoleKey.Value()
	const need = "; the daemon reads every project's runs and rules, so it needs the project's secret key (sb_secret_…, " +
		"or the legacy service_role key) from Project Settings → API Keys"
	switch {
	case strings.HasPrefix(k, "sb_secret_"):
		return ""
	case strings.HasPrefix(k, "sb_publishable_"):
		return "is a publishable key (sb_publishable_…), which is for browsers and apps and sees only what row-level security lets anonymous users see" + need
	case strings.HasPrefix(k, "sb_"):
		return "is an sb_ key of a kind the daemon does not know (not sb_secret_…)" + need
	}
	switch role := jwtRole(k); role {
	case "", "service_role":
		return ""
	case "anon":
		return "is the legacy anon key (a JWT with role \"anon\"), the publishable key's legacy twin" + need
	default:
		return "is a JWT with role \"" + role + "\", not a service_role key" + need
	}
}

// publishableKeyProblem says why k cannot be the key browsers get
// (ui.supabase_publishable_key), or "" when it may be: empty, a publishable
// key (sb_publishable_…) or the legacy anon key. Anything else would either
// fail at Auth or, worse, hand browsers a key that bypasses row-level
// security.
func publishableKeyProblem(k string) string {
	const need = "; give the project's publishable key (sb_publishable_…, or the legacy anon key) from Project Settings → API Keys"
	switch {
	case k == "", strings.HasPrefix(k, "sb_publishable_"):
		return ""
	case strings.HasPrefix(k, "sb_secret_"):
		return "is a secret key (sb_secret_…), which must never reach a browser" + need
	case strings.HasPrefix(k, "sb_"):
		return "is an sb_ key of a kind the daemon does not know (not sb_publishable_…)" + need
	}
	switch role := jwtRole(k); role {
	case "anon":
		return ""
	case "":
		return "is neither sb_publishable_… nor a JWT" + need
	case "service_role":
		return "is the legacy service_role key, which must never reach a browser" + need
	default:
		return "is a JWT with role \"" + role + "\", not the anon key" + need
	}
}

// jwtRole returns the role claim of an unverified JWT, "" when k is not a
// JWT or has no role.
func jwtRole(k string) string {
	if strings.Count(k, ".") != 2 {
		return ""
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(k, claims); err != nil {
		return ""
	}
	role, _ := claims["role"].(string)
	if role == "" {
		return "(none)"
	}
	return role
}
