package chaos

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func post(t *testing.T, url, id string, body []byte, sign func(string, time.Time, []byte) string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	now := time.Now()
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sign(id, now, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestReceiverVerifiesAndDeduplicates(t *testing.T) {
	rcv, err := NewReceiver(webhookSecret, 7)
	require.NoError(t, err)
	defer rcv.Close()
	wh, err := standardwebhooks.NewWebhook(webhookSecret)
	require.NoError(t, err)
	sign := func(id string, ts time.Time, body []byte) string {
		s, err := wh.Sign(id, ts, body)
		require.NoError(t, err)
		return s
	}
	body := []byte(`{"event":"failed","run":{"id":"r1"},"rule":{"id":"c1"}}`)

	assert.Equal(t, http.StatusNoContent, post(t, rcv.URL, "msg_1", body, sign))
	assert.Equal(t, http.StatusNoContent, post(t, rcv.URL, "msg_1", body, sign), "a redelivery is acknowledged again")
	assert.Equal(t, http.StatusUnauthorized, post(t, rcv.URL, "msg_2", body, func(string, time.Time, []byte) string {
		return "v1,AAAA"
	}))
	assert.Equal(t, map[string]Key{"msg_1": {Rule: "c1", Run: "r1", Event: "failed"}}, rcv.Acked())
	st := rcv.Stats()
	assert.Equal(t, 1, st.Acked)
	assert.Equal(t, 1, st.Dupes)
	assert.Equal(t, 1, st.BadSignatures)
	assert.Len(t, rcv.Problems(), 1)

	// Faults apply to ids not acknowledged yet.
	rcv.SetFaults(ReceiverFaults{TooMany: 1})
	assert.Equal(t, http.StatusTooManyRequests, post(t, rcv.URL, "msg_3", body, sign))
	assert.Equal(t, http.StatusNoContent, post(t, rcv.URL, "msg_1", body, sign))
	rcv.SetFaults(ReceiverFaults{ServerError: 1})
	assert.GreaterOrEqual(t, post(t, rcv.URL, "msg_3", body, sign), 500)
}

func TestProxyFailsRESTAndCarriesWebsockets(t *testing.T) {
	up := websocket.Upgrader{}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/realtime/v1/websocket" {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			mt, msg, err := c.ReadMessage()
			if err == nil {
				_ = c.WriteMessage(mt, msg)
			}
			return
		}
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}))
	defer backend.Close()
	p, err := NewProxy(backend.URL)
	require.NoError(t, err)
	defer p.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(p.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/rest/v1/workflow_runs")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "upstream /rest/v1/workflow_runs", body)

	p.SetFailing(true)
	code, body = get("/rest/v1/workflow_runs")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.JSONEq(t, postgrestUnavailable, body)
	code, _ = get("/other")
	assert.Equal(t, http.StatusOK, code, "only /rest/v1/ fails")
	p.SetFailing(false)
	p.FailPath("/rest/v1/alert_configs")
	code, _ = get("/rest/v1/alert_configs")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	code, _ = get("/rest/v1/workflow_runs")
	assert.Equal(t, http.StatusOK, code)
	p.FailPath("")
	assert.Equal(t, 2, p.Failed())

	// Websocket upgrades pass through, even during a REST burst.
	p.SetFailing(true)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(p.URL, "http")+"/realtime/v1/websocket", nil)
	require.NoError(t, err)
	defer ws.Close()
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte("ping")))
	_, msg, err := ws.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "ping", string(msg))
}
