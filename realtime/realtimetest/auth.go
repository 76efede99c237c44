package realtimetest

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"
)

// tokenErrorKind classifies why a JWT was refused, mirroring the reasons
// Realtime's JwtVerification and ChannelsAuthorization return.
type tokenErrorKind int

const (
	tokenMissing        tokenErrorKind = iota + 1 // no apikey / x-api-key
	tokenMalformed                                // not three base64url JSON segments
	tokenClaimsNotMap                             // claims segment is JSON but not an object
	tokenHeaderNotMap                             // header segment is not an object
	tokenSignerError                              // alg not one we can verify with the secret
	tokenSignatureError                           // signature does not verify
	tokenExpired                                  // exp is not in the future
	tokenMissingClaims                            // role or exp missing
	tokenBadExp                                   // exp present but not a number
)

// tokenError is a refused JWT. ExpiredFor is set for tokenExpired.
type tokenError struct {
	Kind       tokenErrorKind
	ExpiredFor int64 // seconds since exp, for tokenExpired
}

func (e *tokenError) Error() string { return e.refreshMessage() }

// httpStatusAndMessage is the handshake rejection Realtime's
// UserSocket.handle_error/2 produces for this error.
func (e *tokenError) httpStatusAndMessage() (int, string) {
	switch e.Kind {
	case tokenMissing:
		return http.StatusUnauthorized, "API key is missing"
	case tokenExpired:
		return http.StatusUnauthorized, "Token has expired"
	case tokenMissingClaims:
		return http.StatusUnauthorized, "Fields `role` and `exp` are required in JWT"
	case tokenMalformed:
		return http.StatusUnauthorized, "The token provided is not a valid JWT"
	case tokenSignatureError:
		return http.StatusUnauthorized, "Failed to validate JWT signature"
	case tokenSignerError:
		return http.StatusUnauthorized, "Failed to generate JWT signer, check your JWT secret or JWKS configuration"
	default:
		return http.StatusInternalServerError, "Error connecting to Realtime"
	}
}

// joinReason is the phx_join error reason for this error
// ("<Code>: <message>", as RealtimeChannel.join/3 logs and returns it).
func (e *tokenError) joinReason() string {
	switch e.Kind {
	case tokenExpired:
		return "InvalidJWTToken: " + e.expiredMessage()
	case tokenMissingClaims:
		return "InvalidJWTToken: Fields `role` and `exp` are required in JWT"
	case tokenMalformed:
		return "MalformedJWT: The token provided is not a valid JWT"
	case tokenSignatureError:
		return "JwtSignatureError: Failed to validate JWT signature"
	case tokenSignerError:
		return "JwtSignerError: Failed to generate JWT signer, check your JWT secret or JWKS configuration"
	default:
		return "Unknown Error on Channel"
	}
}

// refreshMessage is the `system` error message a channel is shut down with
// when an access_token refresh or the periodic token check fails.
func (e *tokenError) refreshMessage() string {
	switch e.Kind {
	case tokenExpired:
		return e.expiredMessage()
	case tokenMissingClaims:
		return "Fields `role` and `exp` are required in JWT"
	case tokenMalformed, tokenMissing:
		return "The token provided is not a valid JWT"
	case tokenSignatureError:
		return ":signature_error"
	case tokenSignerError:
		return "Failed to generate JWT signer, check your JWT secret or JWKS configuration"
	case tokenClaimsNotMap:
		return ":expected_claims_map"
	case tokenHeaderNotMap:
		return ":expected_header_map"
	default:
		return "Unknown Error on Channel"
	}
}

func (e *tokenError) expiredMessage() string {
	return fmt.Sprintf("Token has expired %d seconds ago", e.ExpiredFor)
}

// tokenClaims are the verified claims of a JWT.
type tokenClaims struct {
	Raw  json.RawMessage // the claims object as sent (compact JSON)
	Role string
	Exp  int64 // unix seconds
	// key identifies the role and claims, for caching what they may see;
	// see cacheKey.
	key string
}

// cacheKey identifies the role and claims, for caching what they may see.
func (c tokenClaims) cacheKey() string {
	if c.key != "" {
		return c.key
	}
	return c.Role + "\x00" + string(c.Raw)
}

// verifyToken checks a JWT the way Realtime does for sockets and channels:
// URL-decode and strip whitespace, require a JSON header and claims, an HS*
// algorithm verifiable with secret, a valid signature, exp in the future
// (when present) and both role and exp claims.
func verifyToken(token string, secret []byte, now time.Time) (tokenClaims, *tokenError) {
	return verifyTokenKeys(token, secret, nil, now)
}

// KeyLookup finds the public key a project publishes in its JWKS under kid
// for the algorithm alg (ES256, RS256): Realtime verifies tokens signed
// with a project's asymmetric JWT signing keys with its jwt_jwks.
type KeyLookup func(kid, alg string) (crypto.PublicKey, bool)

// verifyTokenKeys is verifyToken that also accepts ES256 and RS256 tokens
// signed with a key of jwks (when not nil).
func verifyTokenKeys(token string, secret []byte, jwks KeyLookup, now time.Time) (tokenClaims, *tokenError) {
	token = cleanToken(token)
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return tokenClaims{}, &tokenError{Kind: tokenMalformed}
	}
	header, err := decodeSegment(parts[0])
	if err != nil {
		return tokenClaims{}, &tokenError{Kind: tokenMalformed}
	}
	claimsJSON, err := decodeSegment(parts[1])
	if err != nil {
		return tokenClaims{}, &tokenError{Kind: tokenMalformed}
	}
	var claims map[string]any
	if err := json.Unmarshal(claimsJSON, &claims); err != nil || claims == nil {
		return tokenClaims{}, &tokenError{Kind: tokenClaimsNotMap}
	}
	var hdr map[string]any
	if err := json.Unmarshal(header, &hdr); err != nil || hdr == nil {
		return tokenClaims{}, &tokenError{Kind: tokenHeaderNotMap}
	}
	alg, _ := hdr["alg"].(string)
	var key any = secret
	switch alg {
	case "HS256", "HS384", "HS512":
	case "ES256", "RS256":
		kid, _ := hdr["kid"].(string)
		pub, ok := crypto.PublicKey(nil), false
		if jwks != nil {
			pub, ok = jwks(kid, alg)
		}
		if !ok {
			return tokenClaims{}, &tokenError{Kind: tokenSignerError}
		}
		key = pub
	default:
		return tokenClaims{}, &tokenError{Kind: tokenSignerError}
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithoutClaimsValidation())
	if _, err := parser.Parse(token, func(*jwt.Token) (any, error) { return key, nil }); err != nil {
		return tokenClaims{}, &tokenError{Kind: tokenSignatureError}
	}
	out := tokenClaims{Raw: compactJSON(claimsJSON)}
	expVal, hasExp := claims["exp"]
	if hasExp {
		exp, ok := expVal.(float64)
		if !ok || math.IsNaN(exp) || math.IsInf(exp, 0) {
			return tokenClaims{}, &tokenError{Kind: tokenBadExp}
		}
		out.Exp = int64(math.Round(exp))
		if nowSec := now.Unix(); out.Exp <= nowSec {
			return tokenClaims{}, &tokenError{Kind: tokenExpired, ExpiredFor: nowSec - out.Exp}
		}
	}
	role, hasRole := claims["role"]
	if !hasRole || !hasExp {
		return tokenClaims{}, &tokenError{Kind: tokenMissingClaims}
	}
	out.Role, _ = role.(string)
	out.key = out.cacheKey()
	return out, nil
}

// cleanToken mirrors ChannelsAuthorization's clean_token/1: percent-decode,
// then drop all whitespace.
func cleanToken(token string) string {
	if dec, err := url.PathUnescape(token); err == nil {
		token = dec
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, token)
}

func decodeSegment(seg string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
}

func compactJSON(raw []byte) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return json.RawMessage(raw)
	}
	return b.Bytes()
}
