package alerts

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// obj is a JSON object whose keys keep the order they are written in, so
// that preset bodies read like the vendors' documentation.
type obj []kv

type kv struct {
	k string
	v any
}

// MarshalJSON writes the members in order.
func (o obj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := encodeValue(&b, m.k); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := encodeValue(&b, m.v); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// encodeValue writes v as JSON without HTML escaping: bodies are read by
// chat clients, not browsers, and stay readable in the alert log.
func encodeValue(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}

// with appends a member when v is set (not "" and not nil).
func (o obj) with(k string, v any) obj {
	switch x := v.(type) {
	case string:
		if x == "" {
			return o
		}
	case nil:
		return o
	}
	return append(o, kv{k, v})
}

// RenderPreset renders the body a destination's vendor expects for the
// alert c. The webhook destination renders the default payload. A
// pagerduty body carries RoutingKeyPlaceholder for its routing key.
func RenderPreset(d Destination, c *Context) ([]byte, error) {
	var v any
	switch d {
	case DestinationSlack:
		v = slackBody(c)
	case DestinationDiscord:
		v = discordBody(c)
	case DestinationTeams:
		v = teamsBody(c)
	case DestinationGoogleChat:
		v = googleChatBody(c)
	case DestinationPagerDuty:
		v = pagerDutyBody(c)
	default:
		return RenderDefault(c)
	}
	var b bytes.Buffer
	if err := encodeValue(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// occurred is the alert's time as RFC 3339.
func occurred(c *Context) string { return c.OccurredAt.UTC().Format(time.RFC3339) }

// slackEscape escapes the three characters Slack's mrkdwn and plain text
// treat as control sequences.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackBody is a Slack incoming-webhook message: the top-level text is
// the notification (and the fallback where blocks cannot be shown); the
// Block Kit blocks sit in an attachment, the only place a message gets a
// colour bar.
func slackBody(c *Context) any {
	title := truncate(headline(c), 150) // header blocks take 150 characters
	var fields []any
	for _, f := range facts(c) {
		if len(fields) == 10 { // a section holds at most 10 fields
			break
		}
		value := slackEscape(f.value)
		if f.label == "Run" && c.Link != "" {
			value = "<" + slackEscape(c.Link) + "|" + value + ">"
		}
		fields = append(fields, obj{{"type", "mrkdwn"}, {"text", truncate("*"+f.label+"*\n"+value, 2000)}})
	}
	blocks := []any{
		obj{{"type", "header"}, {"text", obj{{"type", "plain_text"}, {"text", title}, {"emoji", true}}}},
		obj{{"type", "section"}, {"fields", fields}},
	}
	if c.Link != "" {
		blocks = append(blocks, obj{{"type", "actions"}, {"elements", []any{
			obj{{"type", "button"}, {"text", obj{{"type", "plain_text"}, {"text", "Open run"}}}, {"url", c.Link}},
		}}})
	}
	blocks = append(blocks, obj{{"type", "context"}, {"elements", []any{
		obj{{"type", "mrkdwn"}, {"text", slackEscape("meshhook-alerts · " + occurred(c))}},
	}}})
	return obj{
		{"text", slackEscape(title)},
		{"attachments", []any{obj{
			{"color", statusColor(c.Event)},
			{"fallback", slackEscape(title)},
			{"blocks", blocks},
		}}},
	}
}

// discordBody is a Discord execute-webhook body with one embed. Mentions
// are switched off: a workflow named "@everyone" must not ping anybody.
func discordBody(c *Context) any {
	color, _ := strconv.ParseInt(strings.TrimPrefix(statusColor(c.Event), "#"), 16, 32)
	var fields []any
	for _, f := range facts(c) {
		fields = append(fields, obj{{"name", truncate(f.label, 256)}, {"value", truncate(f.value, 1024)}, {"inline", f.label != "Run"}})
	}
	embed := obj{{"title", truncate(headline(c), 256)}}.
		with("url", c.Link).
		with("color", color).
		with("fields", fields).
		with("timestamp", occurred(c)).
		with("footer", obj{{"text", "meshhook-alerts · " + truncate(c.Rule.Name, 200)}})
	return obj{
		{"content", truncate(headline(c), 2000)},
		{"embeds", []any{embed}},
		{"allowed_mentions", obj{{"parse", []string{}}}},
	}
}

// teamsBody is a message with one Adaptive Card (schema 1.4), the body a
// Teams "Post to a channel when a webhook request is received" workflow
// takes.
func teamsBody(c *Context) any {
	var fs []any
	for _, f := range facts(c) {
		fs = append(fs, obj{{"title", f.label}, {"value", f.value}})
	}
	body := []any{
		obj{{"type", "TextBlock"}, {"text", headline(c)}, {"weight", "Bolder"}, {"size", "Medium"},
			{"color", teamsColor(c.Event)}, {"wrap", true}},
		obj{{"type", "FactSet"}, {"facts", fs}},
		obj{{"type", "TextBlock"}, {"text", "meshhook-alerts · " + occurred(c)}, {"isSubtle", true}, {"size", "Small"}, {"wrap", true}},
	}
	card := obj{
		{"$schema", "http://adaptivecards.io/schemas/adaptive-card.json"},
		{"type", "AdaptiveCard"},
		{"version", "1.4"},
		{"body", body},
	}
	if c.Link != "" {
		card = append(card, kv{"actions", []any{obj{{"type", "Action.OpenUrl"}, {"title", "Open run"}, {"url", c.Link}}}})
	}
	return obj{
		{"type", "message"},
		{"attachments", []any{obj{
			{"contentType", "application/vnd.microsoft.card.adaptive"},
			{"contentUrl", nil},
			{"content", card},
		}}},
	}
}

// htmlEscape escapes text for Google Chat's card HTML subset, and the
// message text, where <users/…> would @mention people.
func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// googleChatBody is a Google Chat webhook message: text for the
// notification, and a cardsV2 card whose event line carries the colour.
func googleChatBody(c *Context) any {
	var widgets []any
	for _, f := range facts(c) {
		text := htmlEscape(f.value)
		if f.label == "Event" {
			text = `<font color="` + statusColor(c.Event) + `">` + text + `</font>`
		}
		widgets = append(widgets, obj{{"decoratedText", obj{{"topLabel", f.label}, {"text", text}}}})
	}
	if c.Link != "" {
		widgets = append(widgets, obj{{"buttonList", obj{{"buttons", []any{
			obj{{"text", "Open run"}, {"onClick", obj{{"openLink", obj{{"url", c.Link}}}}}},
		}}}}})
	}
	return obj{
		{"text", htmlEscape(headline(c))}, // "<users/all>" in a name must not mention the space
		{"cardsV2", []any{obj{
			{"cardId", "meshhook-alert"},
			{"card", obj{
				{"header", obj{{"title", truncate(headline(c), 200)}, {"subtitle", "meshhook-alerts · " + occurred(c)}}},
				{"sections", []any{obj{{"widgets", widgets}}}},
			}},
		}}},
	}
}

// pagerDutyBody is a PagerDuty Events API v2 event: trigger for the
// events that open an incident, resolve (with the same dedup_key) for
// recovered and resolved. Its routing_key is c.RoutingKey (Render's
// stand-in), else RoutingKeyPlaceholder.
func pagerDutyBody(c *Context) any {
	key := DedupKey(c.Rule.ID, c.RunID, c.Workflow, c.Event)
	routingKey := c.RoutingKey
	if routingKey == "" {
		routingKey = RoutingKeyPlaceholder
	}
	if endsCondition(c.Event) {
		return obj{{"routing_key", routingKey}, {"event_action", "resolve"}, {"dedup_key", key}}
	}
	details := obj{}
	for _, f := range facts(c) {
		details = append(details, kv{strings.ToLower(strings.ReplaceAll(f.label, " ", "_")), f.value})
	}
	payload := obj{
		{"summary", truncate(headline(c), 1024)},
		{"source", strings.TrimSuffix("meshhook/"+throttleWorkflow(c.Workflow), "/")},
		{"severity", Severity(c.Event)},
		{"timestamp", occurred(c)},
	}.with("component", c.Workflow.Slug).with("group", c.Project.ID)
	payload = append(payload, kv{"class", c.Type}, kv{"custom_details", details})
	ev := obj{
		{"routing_key", routingKey},
		{"event_action", "trigger"},
		{"dedup_key", key},
		{"payload", payload},
		{"client", "meshhook-alerts"},
	}.with("client_url", c.Link)
	if c.Link != "" {
		ev = append(ev, kv{"links", []any{obj{{"href", c.Link}, {"text", "Open run"}}}})
	}
	return ev
}
