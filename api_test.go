package luachan_test

// SPEC section 1's HTTP side and the socket's life: /api/*, /healthz, /metrics,
// socket.lua's connect with the 1.8 client's auth token, disconnect by id, and the
// SIGTERM drain.

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestAPIBroadcast(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t), "-api-key", apiKey)
	c := s.dial(t, "vsn=2.0.0")
	c.join("test:api", "1", `{}`, `{"joined":"test:api"}`)

	tests := []struct {
		name string
		key  string
		body string
		want int
	}{
		{"no key", "", `{"topic":"test:api","event":"news","payload":{}}`, http.StatusUnauthorized},
		{"wrong key", "not-the-key", `{"topic":"test:api","event":"news","payload":{}}`, http.StatusUnauthorized},
		{"body not JSON", apiKey, `topic=test:api`, http.StatusBadRequest},
		{"no topic", apiKey, `{"event":"news","payload":{}}`, http.StatusBadRequest},
		{"no event", apiKey, `{"topic":"test:api","payload":{}}`, http.StatusBadRequest},
		{"payload not an object", apiKey, `{"topic":"test:api","event":"news","payload":[1]}`, http.StatusBadRequest},
		{"accepted", apiKey, `{"topic":"test:api","event":"news","payload":{"headline":"hi","n":1}}`, http.StatusAccepted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.post(t, "/api/broadcast", tc.key, tc.body); got != tc.want {
				t.Fatalf("POST /api/broadcast: HTTP %d, want %d", got, tc.want)
			}
		})
	}
	// only the accepted broadcast was delivered
	c.expect(`[null,null,"test:api","news",{"headline":"hi","n":1}]`)
	c.heartbeat("2")
}

func TestAPIOffWithoutKey(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	if got := s.post(t, "/api/broadcast", "", `{"topic":"test:api","event":"news","payload":{}}`); got != http.StatusNotFound {
		t.Fatalf("POST /api/broadcast without -api-key: HTTP %d, want 404", got)
	}
}

func TestDisconnectByID(t *testing.T) {
	t.Parallel()
	s := startServer(t, writeScripts(t, map[string]string{"test.lua": testLua, "socket.lua": socketLua}), "-api-key", apiKey)
	seven1 := s.dial(t, "vsn=2.0.0&id=7")
	seven2 := s.dial(t, "vsn=2.0.0&id=7")
	eight := s.dial(t, "vsn=2.0.0&id=8")
	for _, c := range []*wsClient{seven1, seven2, eight} {
		c.join("test:d", "1", `{}`, `{"joined":"test:d"}`)
	}

	if got := s.post(t, "/api/disconnect", apiKey, `{"id":"user:7"}`); got != http.StatusAccepted {
		t.Fatalf("POST /api/disconnect: HTTP %d, want 202", got)
	}
	seven1.expectClose(websocket.CloseGoingAway)
	seven2.expectClose(websocket.CloseGoingAway)
	eight.heartbeat("2")

	// a "disconnect" broadcast on the socket id does the same (SPEC section 2)
	if got := s.post(t, "/api/broadcast", apiKey, `{"topic":"user:8","event":"disconnect","payload":{}}`); got != http.StatusAccepted {
		t.Fatalf("POST /api/broadcast disconnect: HTTP %d, want 202", got)
	}
	eight.expectClose(websocket.CloseGoingAway)
}

func TestConnect(t *testing.T) {
	t.Parallel()
	s := startServer(t, writeScripts(t, map[string]string{"test.lua": testLua, "socket.lua": socketLua}))

	t.Run("refused before the upgrade", func(t *testing.T) {
		_, err := s.dialHeader(t, "vsn=2.0.0&reject=1", nil)
		if got := handshakeStatus(err); got != http.StatusForbidden {
			t.Fatalf("dial with a connect that refuses: %v, want HTTP 403", err)
		}
	})

	t.Run("socket id", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0&id=42")
		c.join("test:who", "1", `{}`, `{"joined":"test:who"}`)
		c.send(`["1","2","test:who","whoami",{}]`)
		c.expect(`["1","2","test:who","phx_reply",{"status":"ok","response":{"id":"user:42","token":"none"}}]`)
	})

	// the 1.8 JS client: btoa(token) without "=" padding, as a subprotocol next to "phoenix"
	for _, token := range []string{"secret-token", "user-42.token", "ab"} {
		t.Run("auth token subprotocol "+token, func(t *testing.T) {
			proto := "base64url.bearer.phx." + strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(token)), "=")
			h := http.Header{}
			h.Set("Sec-WebSocket-Protocol", "phoenix, "+proto)
			c, err := s.dialHeader(t, "vsn=2.0.0", h)
			if err != nil {
				t.Fatalf("dial with auth token: %v", err)
			}
			if got := c.conn.Subprotocol(); got != "phoenix" {
				t.Fatalf("server chose subprotocol %q, want \"phoenix\"", got)
			}
			c.join("test:who", "1", `{}`, `{"joined":"test:who"}`)
			c.send(`["1","2","test:who","whoami",{}]`)
			c.expect(`["1","2","test:who","phx_reply",{"status":"ok","response":{"id":null,"token":"` + token + `"}}]`)
		})
	}
}

func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	get := func(t *testing.T, path string) (int, string, string) {
		t.Helper()
		resp, err := httpClient.Get(s.url(path))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}

	t.Run("healthz", func(t *testing.T) {
		code, _, body := get(t, "/healthz")
		if code != http.StatusOK || strings.TrimSuffix(body, "\n") != "ok" {
			t.Fatalf("GET /healthz: %d %q, want 200 \"ok\"", code, body)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		code, ctype, body := get(t, "/metrics")
		if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") || !strings.Contains(body, "# TYPE ") {
			t.Fatalf("GET /metrics: %d %q, want 200 Prometheus text; body:\n%s", code, ctype, body)
		}
	})
}

func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	s := startServer(t, testScripts(t))
	c := s.dial(t, "vsn=2.0.0")
	c.join("test:drain", "1", `{}`, `{"joined":"test:drain"}`)

	closed := c.closeAsync()
	s.stop(t) // SIGTERM; stop fails the test unless the process exits 0 in time
	if r := <-closed; r.err != nil || r.code != websocket.CloseServiceRestart {
		t.Fatalf("socket ended with %+v, want close code 1012", r)
	}
	// leave ran with reason "shutdown" (test.lua logs it)
	if s.log.count("test channel left", "left_topic=test:drain", "left_reason=shutdown") != 1 {
		t.Fatalf("want one log line of leave(\"shutdown\") on test:drain; output:\n%s", s.log)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	// wide enough that a loaded -race run cannot starve chatty's heartbeats of a
	// whole idle period; short enough to keep the test quick
	const idle = 1 * time.Second
	s := startServer(t, testScripts(t), "-idle-timeout", idle.String())
	quiet := s.dial(t, "vsn=2.0.0")
	chatty := s.dial(t, "vsn=2.0.0")

	// chatty heartbeats every idle/4 and outlives several idle periods
	tick := time.NewTicker(idle / 4)
	defer tick.Stop()
	for i := range 12 {
		<-tick.C
		chatty.heartbeat(fmt.Sprint(i))
	}
	// quiet, by then long past its timeout, was closed by the server
	code, reason := quiet.expectAnyClose()
	t.Logf("idle socket closed with code %d (%q)", code, reason)
}
