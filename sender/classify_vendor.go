package sender

import (
	"encoding/json"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Vendors whose answers ClassifyVendor reads (Alert.Vendor); the names are
// the rule destinations'.
const (
	VendorSlack      = "slack"
	VendorDiscord    = "discord"
	VendorTeams      = "teams"
	VendorGoogleChat = "googlechat"
	VendorPagerDuty  = "pagerduty"
)

// VendorOf is the vendor of a rule destination's receivers ("" for the
// plain webhook and for destinations whose answers Classify reads).
func VendorOf(destination string) string {
	switch destination {
	case VendorSlack, VendorDiscord, VendorTeams, VendorGoogleChat, VendorPagerDuty:
		return destination
	}
	return ""
}

// ClassifyVendor is Classify for a known receiver: it reads the vendor's
// own answers (Slack's error words, Discord's rate-limit headers and error
// codes, PagerDuty's invalid events, Teams' and Google Chat's error
// objects) so that a revoked or deleted hook fails at once, saying why in
// Outcome.Detail, and a rate limit waits as long as the vendor asks.
// body is the start of the response body. Transport errors, redirects and
// unknown answers are Classify's.
func ClassifyVendor(vendor string, statusCode int, err error, header http.Header, body string, now time.Time) Outcome {
	out := Classify(statusCode, err, header, now)
	if err != nil || statusCode == 0 {
		return out
	}
	switch vendor {
	case VendorSlack:
		return classifySlack(out, statusCode, body)
	case VendorDiscord:
		return classifyDiscord(out, statusCode, header, body, now)
	case VendorPagerDuty:
		return classifyPagerDuty(out, statusCode, body)
	case VendorTeams:
		return classifyTeams(out, statusCode, body)
	case VendorGoogleChat:
		return classifyGoogleChat(out, statusCode, body)
	}
	return out
}

// maxDetail bounds the vendor text an Outcome.Detail quotes.
const maxDetail = 200

// quote is vendor text fit for Outcome.Detail: one line, bounded.
func quote(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxDetail {
		s = s[:maxDetail] + "…"
	}
	return s
}

// slackWord is a Slack error word ("invalid_token").
var slackWord = regexp.MustCompile(`^[a-z][a-z0-9_]{1,63}$`)

// slackErrors are the incoming-webhook error words that no retry can
// change, with what they mean.
var slackErrors = map[string]string{
	"invalid_payload":                   "Slack refused the message body",
	"invalid_blocks":                    "Slack refused the message's blocks",
	"invalid_blocks_format":             "Slack refused the message's blocks",
	"too_many_attachments":              "Slack refused the message: too many attachments",
	"user_not_found":                    "the webhook's user no longer exists",
	"channel_not_found":                 "the webhook's channel no longer exists",
	"channel_is_archived":               "the webhook's channel is archived",
	"action_prohibited":                 "a Slack admin prohibits posting to this channel",
	"posting_to_general_channel_denied": "only admins may post to this channel",
	"invalid_token":                     "the webhook was revoked (its token is no longer valid)",
	"no_service":                        "the webhook was removed or disabled",
	"no_service_id":                     "the webhook was removed or disabled",
	"no_team":                           "the webhook's Slack workspace no longer exists",
	"team_disabled":                     "the webhook's Slack workspace is disabled",
	"no_active_hooks":                   "the webhook was removed or disabled",
}

// classifySlack reads Slack's incoming-webhook answers: 200 "ok", or an
// error word in the body (400, 403, 404, 410; 429 rate_limited; 500
// rollup_error).
func classifySlack(out Outcome, code int, body string) Outcome {
	word := strings.TrimSpace(body)
	if !slackWord.MatchString(word) {
		word = ""
	}
	switch {
	case out.Kind == Success:
		return out
	case code == http.StatusTooManyRequests || code >= 500:
		if word != "" {
			out.Detail = "Slack: " + word
		}
		return out
	}
	if why, ok := slackErrors[word]; ok {
		return Outcome{Kind: Permanent, Reason: "slack_" + word, Detail: why + " (Slack: " + word + ")"}
	}
	if word != "" {
		return Outcome{Kind: Permanent, Reason: out.Reason, Detail: "Slack: " + word}
	}
	if out.Kind == Gone {
		// Slack answers 410 for an archived channel: not a hook gone for good.
		return Outcome{Kind: Permanent, Reason: "http_410", Detail: "Slack answered 410 Gone"}
	}
	return out
}

// discordError is Discord's JSON error body.
type discordError struct {
	Message    string   `json:"message"`
	Code       int      `json:"code"`
	RetryAfter *float64 `json:"retry_after"`
	Global     bool     `json:"global"`
}

// classifyDiscord reads Discord's answers: 204 (or 200 with ?wait=true);
// 429 with Retry-After and X-RateLimit-Reset-After (seconds, fractional)
// and retry_after in the body; 404 10015 Unknown Webhook and 401 50027
// Invalid Webhook Token for a deleted hook.
func classifyDiscord(out Outcome, code int, h http.Header, body string, now time.Time) Outcome {
	if out.Kind == Success {
		return out
	}
	var e discordError
	_ = json.Unmarshal([]byte(body), &e)
	if code == http.StatusTooManyRequests {
		wait := max(out.RetryAfter, secondsHeader(h.Get("X-RateLimit-Reset-After")), secondsHeader(h.Get("Retry-After")))
		if e.RetryAfter != nil {
			wait = max(wait, seconds(*e.RetryAfter))
		}
		out.RetryAfter = min(wait, MaxRetryAfter)
		out.Detail = "Discord rate limit"
		if e.Global || h.Get("X-RateLimit-Global") == "true" {
			out.Detail = "Discord global rate limit"
		}
		return out
	}
	switch {
	case e.Code == 10015 || (code == http.StatusNotFound && e.Code == 0):
		return Outcome{Kind: Permanent, Reason: "discord_unknown_webhook", Detail: "the webhook was deleted (Discord: Unknown Webhook)"}
	case e.Code == 50027 || code == http.StatusUnauthorized:
		return Outcome{Kind: Permanent, Reason: "discord_invalid_token", Detail: "the webhook's token is no longer valid (Discord: Invalid Webhook Token)"}
	case out.Kind == Permanent && e.Message != "":
		out.Detail = "Discord: " + quote(e.Message)
		if e.Code != 0 {
			out.Detail += " (code " + strconv.Itoa(e.Code) + ")"
		}
	}
	return out
}

// secondsHeader reads a header of (possibly fractional) seconds.
func secondsHeader(v string) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0
	}
	return seconds(f)
}

// seconds is f seconds, rounded up to the millisecond and capped.
func seconds(f float64) time.Duration {
	if !(f > 0) { // also NaN
		return 0
	}
	if f >= MaxRetryAfter.Seconds() {
		return MaxRetryAfter
	}
	return time.Duration(math.Ceil(f*1000)) * time.Millisecond
}

// classifyPagerDuty reads the Events API v2's answers: 202 accepted; 400
// an invalid event (never accepted however often it is sent); 429 too
// many events (retried, as 5xx).
func classifyPagerDuty(out Outcome, code int, body string) Outcome {
	if code != http.StatusBadRequest {
		return out
	}
	var e struct {
		Status  string   `json:"status"`
		Message string   `json:"message"`
		Errors  []string `json:"errors"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	detail := "PagerDuty refused the event"
	if e.Message != "" {
		detail += ": " + quote(e.Message)
	}
	if len(e.Errors) > 0 {
		detail += " (" + quote(strings.Join(e.Errors, "; ")) + ")"
	}
	// PagerDuty names the key 'routing_key' ("Length of 'routing_key' is
	// incorrect (should be 32 characters)", "'routing_key' cannot contain
	// non-alphanumeric characters.") or, in older answers, "routing key".
	if errs := strings.ToLower(strings.Join(e.Errors, " ")); strings.Contains(errs, "routing_key") || strings.Contains(errs, "routing key") {
		return Outcome{Kind: Permanent, Reason: "pagerduty_invalid_routing_key", Detail: detail}
	}
	return Outcome{Kind: Permanent, Reason: "pagerduty_invalid_event", Detail: detail}
}

// googleError is the error object of Google's (and Azure's) JSON APIs.
type googleError struct {
	Error struct {
		Code    json.RawMessage `json:"code"` // Google: a number; Azure: a word
		Message string          `json:"message"`
		Status  string          `json:"status"`
	} `json:"error"`
}

// classifyTeams reads the answers of a Teams workflow's webhook trigger
// (Power Automate): 202 accepted; 404 WorkflowNotFound or TriggerNotFound
// for a deleted flow; 401/403 when the trigger's signature is no longer
// valid or the flow is off; 429 throttled. A legacy connector answered
// 200 with an error text about a 429, which is retried.
func classifyTeams(out Outcome, code int, body string) Outcome {
	if out.Kind == Success {
		if strings.Contains(body, "returned HTTP error 429") {
			return Outcome{Kind: Retry, Reason: "http_429", Detail: "Teams: " + quote(body)}
		}
		return out
	}
	var e googleError
	_ = json.Unmarshal([]byte(body), &e)
	var word string
	_ = json.Unmarshal(e.Error.Code, &word)
	if out.Kind != Permanent && out.Kind != Gone {
		if word != "" {
			out.Detail = "Teams: " + word
		}
		return out
	}
	switch {
	case code == http.StatusNotFound || word == "WorkflowNotFound" || word == "TriggerNotFound":
		return Outcome{Kind: Permanent, Reason: "teams_workflow_not_found", Detail: "the Teams workflow or its webhook trigger was deleted" + paren(word)}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return Outcome{Kind: Permanent, Reason: "teams_unauthorized", Detail: "the Teams workflow refused the call: its URL's signature is no longer valid or the flow is turned off" + paren(word)}
	}
	if e.Error.Message != "" {
		out.Detail = "Teams: " + quote(e.Error.Message) + paren(word)
	}
	return out
}

// paren is " (s)", or "" for an empty s.
func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + quote(s) + ")"
}

// classifyGoogleChat reads the Chat API's answers: 200 with the created
// message; INVALID_ARGUMENT (400) for a body it refuses;
// UNAUTHENTICATED/PERMISSION_DENIED (401/403) and NOT_FOUND (404) for a
// webhook whose key or token was revoked or whose space is gone;
// RESOURCE_EXHAUSTED (429) and UNAVAILABLE (503) are retried.
func classifyGoogleChat(out Outcome, code int, body string) Outcome {
	if out.Kind == Success {
		return out
	}
	var e googleError
	_ = json.Unmarshal([]byte(body), &e)
	status := e.Error.Status
	switch {
	case out.Kind == Retry:
		if status != "" {
			out.Detail = "Google Chat: " + status
		}
		return out
	case code == http.StatusNotFound:
		return Outcome{Kind: Permanent, Reason: "googlechat_not_found", Detail: "the Google Chat webhook or its space was deleted" + paren(status)}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return Outcome{Kind: Permanent, Reason: "googlechat_unauthorized", Detail: "the Google Chat webhook's key or token was revoked" + paren(status)}
	case code == http.StatusBadRequest:
		return Outcome{Kind: Permanent, Reason: "googlechat_invalid_argument", Detail: "Google Chat refused the message: " + quote(e.Error.Message)}
	}
	return out
}
