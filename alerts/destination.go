package alerts

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Destination is where a rule's alerts go and so which body they carry:
// DestinationWebhook (the default) sends the signed default payload to any
// receiver; the presets build the body the vendor's own webhook expects.
// A rule's payload_template, when set, overrides every preset's body.
type Destination string

// The destinations a rule can name (alert_configs.destination).
const (
	DestinationWebhook    Destination = "webhook"
	DestinationSlack      Destination = "slack"      // Slack incoming webhook: Block Kit
	DestinationDiscord    Destination = "discord"    // Discord webhook: an embed
	DestinationTeams      Destination = "teams"      // Microsoft Teams Workflows webhook: an Adaptive Card
	DestinationGoogleChat Destination = "googlechat" // Google Chat webhook: a cardsV2 message
	DestinationPagerDuty  Destination = "pagerduty"  // PagerDuty Events API v2
)

// AllDestinations lists every destination in documentation order.
var AllDestinations = []Destination{DestinationWebhook, DestinationSlack, DestinationDiscord, DestinationTeams,
	DestinationGoogleChat, DestinationPagerDuty}

// ParseDestination validates a destination name; "" is the webhook.
func ParseDestination(s string) (Destination, error) {
	d := Destination(strings.TrimSpace(s))
	if d == "" {
		return DestinationWebhook, nil
	}
	for _, k := range AllDestinations {
		if d == k {
			return d, nil
		}
	}
	names := make([]string, len(AllDestinations))
	for i, k := range AllDestinations {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown destination %q (want one of %s)", s, strings.Join(names, ", "))
}

// PagerDutyEventsURL is the Events API v2 endpoint a pagerduty rule posts
// to when its webhook_url is empty (the EU service region's is
// https://events.eu.pagerduty.com/v2/enqueue).
const PagerDutyEventsURL = "https://events.pagerduty.com/v2/enqueue"

// DefaultURL is the URL a rule of d posts to when it gives none: the
// PagerDuty Events API for pagerduty, "" (a URL is required) otherwise.
func (d Destination) DefaultURL() string {
	if d == DestinationPagerDuty {
		return PagerDutyEventsURL
	}
	return ""
}

// NeedsRoutingKey reports whether rules of d need a routing key.
func (d Destination) NeedsRoutingKey() bool { return d == DestinationPagerDuty }

// RoutingKeyPlaceholder stands for a pagerduty rule's routing key in every
// body the daemon renders, stores (alert_logs.payload) and shows (preview,
// logs): the key is a secret, sealed at rest like the others, and is put
// in only when the body is sent (Rule.FillSecrets). A payload_template
// writes it as {{json .RoutingKey}}.
//
// Data cannot stand in for the key: Rule.Render escapes the placeholder's
// text wherever the run's data put it (as "[sealed routing\u005fkey]",
// the same JSON string in other bytes), and writes the placeholder itself
// only where the body asked for the key.
const RoutingKeyPlaceholder = "[sealed routing_key]"

// quotedPlaceholder is RoutingKeyPlaceholder as a whole JSON string.
const quotedPlaceholder = `"` + RoutingKeyPlaceholder + `"`

// escapedPlaceholder is RoutingKeyPlaceholder's text as data leaves it in a
// stored body: the same JSON string value, which FillSecrets never fills.
const escapedPlaceholder = `[sealed routing\u005fkey]`

// RoutingKeyLen is the length of a PagerDuty routing (integration) key:
// the Events API v2 answers 400 "Length of 'routing_key' is incorrect
// (should be 32 characters)" to any other, and "'routing_key' cannot
// contain non-alphanumeric characters" to one with other characters.
const RoutingKeyLen = 32

// routingKeyPattern is what a routing key looks like.
var routingKeyPattern = regexp.MustCompile(`^[A-Za-z0-9]{32}$`)

// CheckRoutingKey validates a routing key given in clear. Its error never
// holds the key.
func CheckRoutingKey(k string) error {
	if !routingKeyPattern.MatchString(k) {
		return fmt.Errorf("must be exactly %d letters and digits, the Integration Key of a PagerDuty Events API v2 integration (got %d characters)",
			RoutingKeyLen, utf8.RuneCountInString(k))
	}
	return nil
}

// newKeyStandIn is a fresh random stand-in for the routing key while a
// body renders: no run's data can hold it, so where it appears in the
// rendered body is where the body asked for the key.
func newKeyStandIn() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "[routing_key " + hex.EncodeToString(b[:]) + "]"
}

// markRoutingKey turns a body rendered with standIn for the routing key
// into its stored form: the placeholder's text that came from data is
// escaped, then standIn becomes the placeholder.
func markRoutingKey(body []byte, standIn string) []byte {
	s := string(body)
	if strings.Contains(s, RoutingKeyPlaceholder) {
		s = strings.ReplaceAll(s, RoutingKeyPlaceholder, escapedPlaceholder)
	}
	return []byte(strings.ReplaceAll(s, standIn, RoutingKeyPlaceholder))
}

// FillSecrets returns body with the rule's routing key put in: for the
// pagerduty body (no payload_template) in the top-level routing_key only;
// for a payload_template, in every whole JSON string that is the
// placeholder (Render left it only where the template wrote .RoutingKey).
// It returns body itself when there is nothing to fill.
func (r *Rule) FillSecrets(body []byte) []byte {
	if r.routingKey == "" || !bytes.Contains(body, []byte(quotedPlaceholder)) {
		return body
	}
	key, _ := json.Marshal(r.routingKey)
	if r.payload == nil {
		return fillTopLevel(body, "routing_key", key)
	}
	return bytes.ReplaceAll(body, []byte(quotedPlaceholder), key)
}

// fillTopLevel returns body with the value of its top-level member name
// replaced by value when that value is the placeholder; body itself
// otherwise.
func fillTopLevel(body []byte, name string, value []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return body
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return body
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return body
		}
		if k != name {
			continue
		}
		if string(raw) != quotedPlaceholder {
			return body
		}
		end := int(dec.InputOffset())
		start := end - len(raw)
		out := make([]byte, 0, len(body)-len(raw)+len(value))
		out = append(append(append(out, body[:start]...), value...), body[end:]...)
		return out
	}
	return body
}

// Destination is where the rule's alerts go.
func (r *Rule) Destination() Destination {
	if r.dest == "" {
		return DestinationWebhook
	}
	return r.dest
}

// DedupKey is the PagerDuty dedup_key of an alert (also .DedupKey in
// templates). Conditions of one run (delayed and stalled, ended by
// recovered) are one incident per rule and run; failures (failed, ended by
// resolved) are one incident per rule and workflow, so repeated failures
// of a workflow add to one open incident and the next success resolves
// it. Keys longer than PagerDuty's 255 characters are hashed.
func DedupKey(ruleID, runID string, wf WorkflowInfo, e Event) string {
	var k string
	switch e {
	case EventDelayed, EventStalled, EventRecovered:
		k = "meshhook:" + ruleID + ":run:" + runID
	default:
		k = "meshhook:" + ruleID + ":workflow:" + throttleWorkflow(wf)
	}
	if len(k) > 255 {
		sum := sha256.Sum256([]byte(k))
		k = "meshhook:" + ruleID + ":sha256:" + hex.EncodeToString(sum[:])
	}
	return k
}

// pagerDutyRefused are the events a pagerduty rule cannot list: each
// would trigger an incident that no later event of the rule resolves (a
// succeeded or canceled run with no failure open, a paused run, which no
// event ends). Failures are paged with failed and closed with resolved;
// conditions with delayed or stalled and closed with recovered.
var pagerDutyRefused = []Event{EventSucceeded, EventCanceled, EventPaused}

// checkDestinationEvents is why a rule of d cannot list events, or nil.
func checkDestinationEvents(d Destination, events eventSet) error {
	if d != DestinationPagerDuty {
		return nil
	}
	var bad []string
	for _, e := range pagerDutyRefused {
		if events.has(e) {
			bad = append(bad, string(e))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fieldErrorf("events", "the pagerduty destination does not send %s: PagerDuty would open an incident that "+
		"nothing resolves (page failed with resolved, delayed or stalled with recovered)", strings.Join(bad, ", "))
}

// Severity is the PagerDuty severity of a triggering event.
func Severity(e Event) string {
	switch e {
	case EventFailed:
		return "error"
	case EventDelayed, EventStalled, EventCanceled:
		return "warning"
	}
	return "info"
}

// endsCondition reports whether e ends an incident rather than opening one.
func endsCondition(e Event) bool { return e == EventRecovered || e == EventResolved }

// statusColor is the colour of an event, as #rrggbb: red for failures,
// amber for conditions that need a look, green for good news, grey for
// canceled and blue for paused.
func statusColor(e Event) string {
	switch e {
	case EventFailed:
		return "#d92d20"
	case EventDelayed, EventStalled:
		return "#f79009"
	case EventSucceeded, EventRecovered, EventResolved:
		return "#12b76a"
	case EventPaused:
		return "#2e90fa"
	}
	return "#667085" // canceled
}

// teamsColor is the Adaptive Card text colour of an event.
func teamsColor(e Event) string {
	switch e {
	case EventFailed:
		return "Attention"
	case EventDelayed, EventStalled, EventCanceled:
		return "Warning"
	case EventSucceeded, EventRecovered, EventResolved:
		return "Good"
	}
	return "Accent"
}

// workflowLabel is how a preset names the run's workflow.
func workflowLabel(c *Context) string {
	for _, s := range []string{c.Workflow.Name, c.Workflow.Slug, c.Workflow.ID} {
		if s != "" {
			return s
		}
	}
	return "A workflow"
}

// headline is a preset's one-line summary of an alert.
func headline(c *Context) string {
	wf := workflowLabel(c)
	switch c.Event {
	case EventSucceeded:
		return wf + " succeeded"
	case EventFailed:
		return wf + " failed"
	case EventCanceled:
		return wf + " was canceled"
	case EventPaused:
		return wf + " is paused, waiting for input"
	case EventDelayed:
		return fmt.Sprintf("%s is delayed: running for over %s", wf, shortDuration(c.Threshold))
	case EventStalled:
		return fmt.Sprintf("%s is stalled: paused for over %s", wf, shortDuration(c.Threshold))
	case EventRecovered:
		return wf + " recovered: the run finished"
	case EventResolved:
		return wf + " resolved: a run succeeded after a failure"
	}
	return wf + ": " + string(c.Event)
}

// shortDuration writes d to the second ("1h2m3s"; "0s" for zero).
func shortDuration(d time.Duration) string { return d.Round(time.Second).String() }

// fact is one labelled value of a preset body.
type fact struct{ label, value string }

// facts are the labelled values every preset shows, optional ones only
// when known.
func facts(c *Context) []fact {
	out := []fact{{"Workflow", workflowLabel(c)}, {"Event", string(c.Event)}}
	if c.Status != "" {
		out = append(out, fact{"Status", c.Status})
	}
	if c.Duration > 0 {
		out = append(out, fact{"Duration", shortDuration(c.Duration)})
	}
	if c.Threshold > 0 {
		out = append(out, fact{"Threshold", shortDuration(c.Threshold)})
	}
	if len(c.RecoveredFrom) > 0 {
		names := make([]string, len(c.RecoveredFrom))
		for i, e := range c.RecoveredFrom {
			names[i] = string(e)
		}
		out = append(out, fact{"Recovered from", strings.Join(names, ", ")})
	}
	if c.SuppressedCount > 0 {
		out = append(out, fact{"Suppressed since last alert", fmt.Sprint(c.SuppressedCount)})
	}
	out = append(out, fact{"Run", c.RunID}, fact{"Rule", c.Rule.Name})
	return out
}

// truncate cuts s to at most n runes, marking a cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
