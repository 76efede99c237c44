package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meshhook/meshhook-alerts/sender"
)

// OneShotSender makes one signed attempt (sender.Sender.SendOnce).
type OneShotSender interface {
	SendOnce(ctx context.Context, a sender.Alert) sender.OneShot
}

// WebhookNotifier delivers watchdog notices to the operator webhook as
// Standard-Webhooks-signed requests, through the sender's URL checks and
// SSRF guard.
type WebhookNotifier struct {
	Sender OneShotSender
	URL    string
	Secret string // whsec_…
}

// Notice event types.
const (
	NoticeFiring   = "meshhook_alerts.ops.firing"
	NoticeResolved = "meshhook_alerts.ops.resolved"
)

// noticeBody is the JSON body of an internal alert.
type noticeBody struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      Notice    `json:"data"`
}

// Notify sends n; it fails unless the webhook answered 2xx.
func (w *WebhookNotifier) Notify(ctx context.Context, n Notice) error {
	typ := NoticeResolved
	if n.Firing {
		typ = NoticeFiring
	}
	body, err := json.Marshal(noticeBody{Type: typ, Timestamp: n.At.UTC(), Data: n})
	if err != nil {
		return err
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	res := w.Sender.SendOnce(ctx, sender.Alert{
		ID: "ops", WebhookID: "msg_ops_" + hex.EncodeToString(id[:]), Event: typ,
		Payload: body, TargetURL: w.URL, Secrets: []string{w.Secret}, OccurredAt: n.At,
	})
	if res.Outcome.Kind == sender.Success {
		return nil
	}
	if res.Error != "" {
		return fmt.Errorf("operator webhook: %s (%s)", res.Outcome.Reason, res.Error)
	}
	if res.Outcome.Reason == "" {
		return errors.New("operator webhook: no outcome")
	}
	return fmt.Errorf("operator webhook answered %d (%s)", res.StatusCode, res.Outcome.Reason)
}
