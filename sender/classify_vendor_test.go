package sender

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type vendorCase struct {
	name   string
	code   int
	header http.Header
	body   string
	want   Outcome
}

func runVendorCases(t *testing.T, vendor string, cases []vendorCase) {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range cases {
		t.Run(vendor+"/"+c.name, func(t *testing.T) {
			assert.Equal(t, c.want, ClassifyVendor(vendor, c.code, nil, c.header, c.body, now))
		})
	}
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestClassifySlack(t *testing.T) {
	runVendorCases(t, VendorSlack, []vendorCase{
		{"200 ok", 200, nil, "ok", Outcome{Kind: Success, Reason: "ok"}},
		{"400 invalid_payload", 400, nil, "invalid_payload", Outcome{Kind: Permanent, Reason: "slack_invalid_payload",
			Detail: "Slack refused the message body (Slack: invalid_payload)"}},
		{"403 invalid_token", 403, nil, "invalid_token", Outcome{Kind: Permanent, Reason: "slack_invalid_token",
			Detail: "the webhook was revoked (its token is no longer valid) (Slack: invalid_token)"}},
		{"403 action_prohibited", 403, nil, "action_prohibited\n", Outcome{Kind: Permanent, Reason: "slack_action_prohibited",
			Detail: "a Slack admin prohibits posting to this channel (Slack: action_prohibited)"}},
		{"404 no_service", 404, nil, "no_service", Outcome{Kind: Permanent, Reason: "slack_no_service",
			Detail: "the webhook was removed or disabled (Slack: no_service)"}},
		{"404 channel_not_found", 404, nil, "channel_not_found", Outcome{Kind: Permanent, Reason: "slack_channel_not_found",
			Detail: "the webhook's channel no longer exists (Slack: channel_not_found)"}},
		{"410 channel_is_archived is not a rule-disabling Gone", 410, nil, "channel_is_archived", Outcome{Kind: Permanent,
			Reason: "slack_channel_is_archived", Detail: "the webhook's channel is archived (Slack: channel_is_archived)"}},
		{"410 without a word", 410, nil, "", Outcome{Kind: Permanent, Reason: "http_410", Detail: "Slack answered 410 Gone"}},
		{"400 unknown word", 400, nil, "some_new_error", Outcome{Kind: Permanent, Reason: "http_400", Detail: "Slack: some_new_error"}},
		{"429 rate_limited waits", 429, hdr("Retry-After", "30"), "rate_limited", Outcome{Kind: Retry, Reason: "http_429",
			RetryAfter: 30 * time.Second, Detail: "Slack: rate_limited"}},
		{"500 rollup_error retries", 500, nil, "rollup_error", Outcome{Kind: Retry, Reason: "http_500", Detail: "Slack: rollup_error"}},
		{"html error page is not a word", 404, nil, "<html>nope</html>", Outcome{Kind: Permanent, Reason: "http_404"}},
	})
}

func TestClassifyDiscord(t *testing.T) {
	runVendorCases(t, VendorDiscord, []vendorCase{
		{"204", 204, nil, "", Outcome{Kind: Success, Reason: "ok"}},
		{"200 with wait", 200, nil, `{"id":"1"}`, Outcome{Kind: Success, Reason: "ok"}},
		{"429 reset-after beats a shorter retry-after", 429, hdr("Retry-After", "1", "X-RateLimit-Reset-After", "2.345"),
			`{"message":"You are being rate limited.","retry_after":0.5,"global":false}`,
			Outcome{Kind: Retry, Reason: "http_429", RetryAfter: 2345 * time.Millisecond, Detail: "Discord rate limit"}},
		{"429 body retry_after", 429, nil, `{"message":"You are being rate limited.","retry_after":64.57,"global":true}`,
			Outcome{Kind: Retry, Reason: "http_429", RetryAfter: 64570 * time.Millisecond, Detail: "Discord global rate limit"}},
		{"429 capped", 429, hdr("X-RateLimit-Reset-After", "99999"), "",
			Outcome{Kind: Retry, Reason: "http_429", RetryAfter: MaxRetryAfter, Detail: "Discord rate limit"}},
		{"404 unknown webhook", 404, nil, `{"message": "Unknown Webhook", "code": 10015}`, Outcome{Kind: Permanent,
			Reason: "discord_unknown_webhook", Detail: "the webhook was deleted (Discord: Unknown Webhook)"}},
		{"401 invalid token", 401, nil, `{"message": "Invalid Webhook Token", "code": 50027}`, Outcome{Kind: Permanent,
			Reason: "discord_invalid_token", Detail: "the webhook's token is no longer valid (Discord: Invalid Webhook Token)"}},
		{"400 invalid form body", 400, nil, `{"message": "Invalid Form Body", "code": 50035}`, Outcome{Kind: Permanent,
			Reason: "http_400", Detail: "Discord: Invalid Form Body (code 50035)"}},
		{"502 retries", 502, nil, "", Outcome{Kind: Retry, Reason: "http_502"}},
	})
}

func TestClassifyPagerDuty(t *testing.T) {
	runVendorCases(t, VendorPagerDuty, []vendorCase{
		{"202 accepted", 202, nil, `{"status":"success","message":"Event processed","dedup_key":"k"}`, Outcome{Kind: Success, Reason: "ok"}},
		{"400 invalid event", 400, nil, `{"status":"invalid event","message":"Event object is invalid","errors":["'payload.severity' is invalid"]}`,
			Outcome{Kind: Permanent, Reason: "pagerduty_invalid_event",
				Detail: "PagerDuty refused the event: Event object is invalid ('payload.severity' is invalid)"}},
		// PagerDuty's answers to a key of the wrong length or characters, as
		// users quote them (envato/pagerduty#70, blockpane/tenderduty#10).
		{"400 routing key length", 400, nil, `{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}`,
			Outcome{Kind: Permanent, Reason: "pagerduty_invalid_routing_key",
				Detail: "PagerDuty refused the event: Event object is invalid (Length of 'routing_key' is incorrect (should be 32 characters))"}},
		{"400 routing key characters", 400, nil, `{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)","'routing_key' cannot contain non-alphanumeric characters."]}`,
			Outcome{Kind: Permanent, Reason: "pagerduty_invalid_routing_key",
				Detail: "PagerDuty refused the event: Event object is invalid (Length of 'routing_key' is incorrect (should be 32 characters); 'routing_key' cannot contain non-alphanumeric characters.)"}},
		{"400 without a body", 400, nil, "", Outcome{Kind: Permanent, Reason: "pagerduty_invalid_event", Detail: "PagerDuty refused the event"}},
		{"429 retries", 429, nil, "", Outcome{Kind: Retry, Reason: "http_429"}},
		{"429 with retry-after", 429, hdr("Retry-After", "10"), "", Outcome{Kind: Retry, Reason: "http_429", RetryAfter: 10 * time.Second}},
		{"500 retries", 500, nil, "", Outcome{Kind: Retry, Reason: "http_500"}},
		{"404 permanent", 404, nil, "", Outcome{Kind: Permanent, Reason: "http_404"}},
	})
}

func TestClassifyTeams(t *testing.T) {
	runVendorCases(t, VendorTeams, []vendorCase{
		{"202 accepted", 202, nil, "", Outcome{Kind: Success, Reason: "ok"}},
		{"legacy 200 with a 429 inside retries", 200, nil, "Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0",
			Outcome{Kind: Retry, Reason: "http_429", Detail: "Teams: Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0"}},
		{"404 workflow deleted", 404, nil, `{"error":{"code":"WorkflowNotFound","message":"The workflow 'x' could not be found."}}`,
			Outcome{Kind: Permanent, Reason: "teams_workflow_not_found", Detail: "the Teams workflow or its webhook trigger was deleted (WorkflowNotFound)"}},
		{"401 signature", 401, nil, `{"error":{"code":"DirectApiInvalidAuthorizationSignature","message":"The provided authorization signature is invalid."}}`,
			Outcome{Kind: Permanent, Reason: "teams_unauthorized", Detail: "the Teams workflow refused the call: its URL's signature is no longer valid or the flow is turned off (DirectApiInvalidAuthorizationSignature)"}},
		{"400 bad content", 400, nil, `{"error":{"code":"InvalidRequestContent","message":"The request content is not valid."}}`,
			Outcome{Kind: Permanent, Reason: "http_400", Detail: "Teams: The request content is not valid. (InvalidRequestContent)"}},
		{"429 throttled", 429, hdr("Retry-After", "5"), `{"error":{"code":"WorkflowRequestsThrottled","message":"Rate limit"}}`,
			Outcome{Kind: Retry, Reason: "http_429", RetryAfter: 5 * time.Second, Detail: "Teams: WorkflowRequestsThrottled"}},
	})
}

func TestClassifyGoogleChat(t *testing.T) {
	gerr := func(code int, status, msg string) string {
		return fmt.Sprintf(`{"error":{"code":%d,"message":%q,"status":%q}}`, code, msg, status)
	}
	runVendorCases(t, VendorGoogleChat, []vendorCase{
		{"200 message", 200, nil, `{"name":"spaces/A/messages/B"}`, Outcome{Kind: Success, Reason: "ok"}},
		{"400 invalid argument", 400, nil, gerr(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
			Outcome{Kind: Permanent, Reason: "googlechat_invalid_argument", Detail: "Google Chat refused the message: Invalid JSON payload received."}},
		{"403 revoked", 403, nil, gerr(403, "PERMISSION_DENIED", "The caller does not have permission"),
			Outcome{Kind: Permanent, Reason: "googlechat_unauthorized", Detail: "the Google Chat webhook's key or token was revoked (PERMISSION_DENIED)"}},
		{"401 revoked", 401, nil, gerr(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."),
			Outcome{Kind: Permanent, Reason: "googlechat_unauthorized", Detail: "the Google Chat webhook's key or token was revoked (UNAUTHENTICATED)"}},
		{"404 space gone", 404, nil, gerr(404, "NOT_FOUND", "Requested entity was not found."),
			Outcome{Kind: Permanent, Reason: "googlechat_not_found", Detail: "the Google Chat webhook or its space was deleted (NOT_FOUND)"}},
		{"429 retries", 429, nil, gerr(429, "RESOURCE_EXHAUSTED", "Quota exceeded"),
			Outcome{Kind: Retry, Reason: "http_429", Detail: "Google Chat: RESOURCE_EXHAUSTED"}},
		{"503 retries", 503, hdr("Retry-After", "3"), gerr(503, "UNAVAILABLE", "The service is currently unavailable."),
			Outcome{Kind: Retry, Reason: "http_503", RetryAfter: 3 * time.Second, Detail: "Google Chat: UNAVAILABLE"}},
	})
}

func TestClassifyVendorLeavesTransportErrorsAndWebhooksToClassify(t *testing.T) {
	now := time.Now()
	for _, v := range []string{"", VendorSlack, VendorDiscord, VendorTeams, VendorGoogleChat, VendorPagerDuty} {
		assert.Equal(t, Classify(0, context.DeadlineExceeded, nil, now), ClassifyVendor(v, 0, context.DeadlineExceeded, nil, "", now), v)
	}
	for _, code := range []int{200, 301, 400, 404, 410, 429, 500} {
		assert.Equal(t, Classify(code, nil, nil, now), ClassifyVendor("", code, nil, nil, "invalid_token", now), code)
	}
}

// A vendor's answer is read whatever ResponseExcerptBytes keeps: with no
// excerpt stored, a removed Slack hook still fails as such.
func TestVendorAnswerIsReadWithoutAStoredExcerpt(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "no_service")
	}))
	defer srv.Close()
	for _, keep := range []int{0, 4} {
		opts := fastOptions()
		opts.ResponseExcerptBytes = keep
		s, err := New(opts, newMemStore(), nil)
		require.NoError(t, err)
		a := alert("t", srv.URL+"/services/x")
		a.Vendor = VendorSlack
		res := s.SendOnce(context.Background(), a)
		assert.Equal(t, "slack_no_service", res.Outcome.Reason, "excerpt %d", keep)
		assert.Equal(t, "no_service"[:keep], res.ResponseExcerpt, "only the configured excerpt is kept")
		assert.Contains(t, res.Error, "removed or disabled")
	}
}
