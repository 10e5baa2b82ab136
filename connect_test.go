package luachan_test

// scripts/examples/socket.lua (SPEC section 3, "Connecting") with and without -secret:
// anonymous sockets connect, a token must be a valid HS256 JWT whose sub becomes
// assigns.user and the socket id; and disconnect by id closes exactly the sockets with
// that id.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testSecret is the -secret of the servers that verify tokens.
const testSecret = "test-secret-0123456789abcdef"

// mintToken signs claims as an HS256 JWT by hand, as any backend's JWT library does.
func mintToken(tb testing.TB, secret string, claims map[string]any) string {
	tb.Helper()
	return mintTokenAlg(tb, secret, "HS256", claims)
}

// mintTokenAlg is mintToken with any alg in the header ("none" leaves the signature empty).
func mintTokenAlg(tb testing.TB, secret, alg string, claims map[string]any) string {
	tb.Helper()
	enc := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(data)
	}
	signing := enc(map[string]string{"alg": alg, "typ": "JWT"}) + "." + enc(claims)
	if alg == "none" {
		return signing + "."
	}
	return signing + "." + mintTokenSigned(tb, secret, signing)
}

// authHeader is the Sec-WebSocket-Protocol the 1.8 JS client sends for authToken.
func authHeader(token string) http.Header {
	h := http.Header{}
	h.Set("Sec-WebSocket-Protocol", "phoenix, base64url.bearer.phx."+strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(token)), "="))
	return h
}

// whoamiLua replies to its join with the socket's assigns and id, the claims connect put
// there made visible.
const whoamiLua = `
return {
  topic = "whoami",
  join = function(topic, payload, socket)
    return true, { assigns = socket.assigns, id = socket.id or luachan.null }
  end,
}
`

func TestExampleSocketWithoutSecret(t *testing.T) {
	t.Parallel()
	s := startServer(t, examplesPlus(t, map[string]string{"whoami.lua": whoamiLua}))

	// anonymous: accepted, with empty assigns and no id; the rooms work as before
	c := s.dial(t, "vsn=2.0.0")
	c.join("whoami", "1", `{}`, `{"assigns":{},"id":null}`)
	joinRoom(c, "rooms:1", "2", "ann")
	c2 := s.dial(t, "vsn=2.0.0&token=")
	c2.join("whoami", "1", `{}`, `{"assigns":{},"id":null}`)

	// a token, even one that would be valid, is refused: there is no secret to check it
	tok := mintToken(t, testSecret, map[string]any{"sub": "alice"})
	if _, err := s.dialHeader(t, "vsn=2.0.0&token="+url.QueryEscape(tok), nil); handshakeStatus(err) != http.StatusForbidden {
		t.Fatalf("dial with ?token= and no -secret: %v, want HTTP 403", err)
	}
	if _, err := s.dialHeader(t, "vsn=2.0.0", authHeader(tok)); handshakeStatus(err) != http.StatusForbidden {
		t.Fatalf("dial with authToken and no -secret: %v, want HTTP 403", err)
	}
	s.log.waitFor(t, readTimeout, "token refused", "no secret configured")
}

func TestExampleSocketTokens(t *testing.T) {
	t.Parallel()
	s := startServer(t, examplesPlus(t, map[string]string{"whoami.lua": whoamiLua}), "-secret", testSecret)
	now := time.Now().Unix()
	valid := mintToken(t, testSecret, map[string]any{"sub": "alice", "exp": now + 3600})

	t.Run("accepted", func(t *testing.T) {
		for _, tc := range []struct {
			name, query string
			h           http.Header
		}{
			{"query param", "vsn=2.0.0&token=" + url.QueryEscape(valid), nil},
			{"authToken subprotocol", "vsn=2.0.0", authHeader(valid)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, err := s.dialHeader(t, tc.query, tc.h)
				if err != nil {
					t.Fatalf("dial with a valid token: %v", err)
				}
				c.join("whoami", "1", `{}`, `{"assigns":{"user":"alice"},"id":"user_socket:alice"}`)
				// the token's user wins over the one the client names
				st, _ := joinPresenceAs(c, "presence:tokens-"+strings.ReplaceAll(tc.name, " ", "-"), "2", "mallory", "alice")
				if len(st) != 1 || len(st["alice"].Metas) != 1 {
					t.Fatalf("presence_state %+v, want alice (from the token) only", st)
				}
			})
		}
	})

	t.Run("anonymous still welcome", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		c.join("whoami", "1", `{}`, `{"assigns":{},"id":null}`)
	})

	refused := []struct{ name, token string }{
		{"expired", mintToken(t, testSecret, map[string]any{"sub": "alice", "exp": now - 60})},
		{"not valid yet", mintToken(t, testSecret, map[string]any{"sub": "alice", "nbf": now + 3600})},
		{"other secret", mintToken(t, "not-the-secret", map[string]any{"sub": "alice"})},
		{"alg none", mintTokenAlg(t, "", "none", map[string]any{"sub": "alice"})},
		{"no sub", mintToken(t, testSecret, map[string]any{"name": "alice"})},
		{"sub not a string", mintToken(t, testSecret, map[string]any{"sub": 42})},
		{"not a JWT", "hello"},
	}
	for _, tc := range refused {
		t.Run("refused "+tc.name, func(t *testing.T) {
			if _, err := s.dialHeader(t, "vsn=2.0.0&token="+url.QueryEscape(tc.token), nil); handshakeStatus(err) != http.StatusForbidden {
				t.Fatalf("dial with ?token=: %v, want HTTP 403", err)
			}
			if _, err := s.dialHeader(t, "vsn=2.0.0", authHeader(tc.token)); handshakeStatus(err) != http.StatusForbidden {
				t.Fatalf("dial with authToken: %v, want HTTP 403", err)
			}
		})
	}
	s.log.waitFor(t, readTimeout, "token refused", "reason=expired")
}

// kickLua calls luachan.disconnect(id) for the id its "kick" event names.
const kickLua = `
return {
  topic = "kick",
  join = function() return true end,
  handle_in = function(event, payload, socket)
    luachan.disconnect(payload.id)
    return "ok"
  end,
}
`

// TestDisconnectByIDExactly closes every socket of one id and nothing else: not the
// sockets of another id, of an id it is a prefix of, or without an id; by
// POST /api/disconnect and by luachan.disconnect. leave runs with "closed" on each channel
// of the closed sockets, and presence sees them go.
func TestDisconnectByIDExactly(t *testing.T) {
	t.Parallel()
	s := startServer(t, examplesPlus(t, map[string]string{"test.lua": testLua, "kick.lua": kickLua}),
		"-secret", testSecret, "-api-key", apiKey)
	dialAs := func(sub string) *wsClient {
		t.Helper()
		if sub == "" {
			return s.dial(t, "vsn=2.0.0")
		}
		return s.dial(t, "vsn=2.0.0&token="+mintToken(t, testSecret, map[string]any{"sub": sub}))
	}
	observer := dialAs("")
	observer.join("test:observer", "1", `{}`, `{"joined":"test:observer"}`)
	st, _ := joinPresence(observer, "presence:d", "2", "observer")
	if len(st) != 1 {
		t.Fatalf("presence_state %+v, want the observer only", st)
	}

	alice1, alice2, alicia, bob, anon := dialAs("alice"), dialAs("alice"), dialAs("alicex"), dialAs("bob"), dialAs("")
	all := []*wsClient{alice1, alice2, alicia, bob, anon}
	users := []string{"alice", "alice", "alicex", "bob", "anon"}
	for i, c := range all {
		c.join("test:d"+fmt.Sprint(i), "1", `{}`, fmt.Sprintf(`{"joined":"test:d%d"}`, i))
		joinPresence(c, "presence:d", "2", users[i])
		// everyone joined before hears the join; drain it so what follows is next
		for _, earlier := range append([]*wsClient{observer}, all[:i]...) {
			var d presenceDiff
			expectPush(t, earlier.readMsg(), nil, "presence:d", "presence_diff", &d)
			if d.Joins.keys()[0] != users[i] {
				t.Fatalf("join diff %+v, want %s's join", d, users[i])
			}
		}
	}

	// an id nobody has closes nothing
	if got := s.post(t, "/api/disconnect", apiKey, `{"id":"user_socket:nobody"}`); got != http.StatusAccepted {
		t.Fatalf("POST /api/disconnect: HTTP %d, want 202", got)
	}
	if got := s.post(t, "/api/disconnect", "", `{"id":"user_socket:alice"}`); got != http.StatusUnauthorized {
		t.Fatalf("POST /api/disconnect without the key: HTTP %d, want 401", got)
	}
	for i, c := range all {
		c.heartbeat(fmt.Sprint(10 + i))
	}

	if got := s.post(t, "/api/disconnect", apiKey, `{"id":"user_socket:alice"}`); got != http.StatusAccepted {
		t.Fatalf("POST /api/disconnect: HTTP %d, want 202", got)
	}
	alice1.expectClose(websocket.CloseGoingAway)
	alice2.expectClose(websocket.CloseGoingAway)

	// test.lua's leave tells the observer of each channel that ended, and how; presence
	// drops both of alice's metas: four frames, in any order between the two sockets
	left := map[string]string{} // topic -> leave reason
	leaves := 0
	for range 4 {
		m := observer.readMsg()
		switch m.event {
		case "left":
			var p struct{ Topic, Reason string }
			if err := json.Unmarshal(m.payload, &p); err != nil {
				t.Fatalf("left %s: %v", m.payload, err)
			}
			left[p.Topic] = p.Reason
		case "presence_diff":
			var d presenceDiff
			expectPush(t, m, nil, "presence:d", "presence_diff", &d)
			if len(d.Joins) != 0 || len(d.Leaves) != 1 || len(d.Leaves["alice"].Metas) != 1 {
				t.Fatalf("presence_diff %s, want one of alice's metas leaving", m.payload)
			}
			leaves++
		default:
			t.Fatalf("observer got %s, want left or presence_diff", m.text)
		}
	}
	if want := map[string]string{"test:d0": "closed", "test:d1": "closed"}; !maps.Equal(left, want) || leaves != 2 {
		t.Fatalf("observer got left %v and %d presence leaves, want test:d0 and test:d1 closed and 2 leaves", left, leaves)
	}

	// everyone else is still connected and joined, and heard alice's two metas leave
	for i, c := range []*wsClient{alicia, bob, anon} {
		for range 2 {
			var d presenceDiff
			expectPush(t, c.readMsg(), nil, "presence:d", "presence_diff", &d)
			if len(d.Joins) != 0 || len(d.Leaves["alice"].Metas) != 1 {
				t.Fatalf("presence_diff %+v, want one of alice's metas leaving", d)
			}
		}
		c.heartbeat(fmt.Sprint(20 + i))
		topic := fmt.Sprintf("test:d%d", i+2)
		c.send(fmt.Sprintf(`["1","30",%q,"echo",{"still":"here"}]`, topic))
		c.expect(fmt.Sprintf(`["1","30",%q,"phx_reply",{"status":"ok","response":{"still":"here"}}]`, topic))
	}
	observer.heartbeat("40")
	if got := serverList(observer, "presence:d", "2", "41"); len(got) != 4 || len(got["alice"].Metas) != 0 {
		t.Fatalf("presence after the disconnect %+v, want observer, alicex, bob and anon", got)
	}

	// a script does the same with luachan.disconnect
	kicker := dialAs("")
	kicker.join("kick", "1", `{}`, `{}`)
	kicker.send(`["1","2","kick","kick",{"id":"user_socket:bob"}]`)
	kicker.expect(`["1","2","kick","phx_reply",{"status":"ok","response":{}}]`)
	bob.expectClose(websocket.CloseGoingAway)
	// the observer hears test:d3 left ("closed") and bob's presence leave, in any order;
	// alicia and anon the presence leave
	for _, c := range []*wsClient{observer, alicia, anon} {
		frames := 1
		if c == observer {
			frames = 2
		}
		sawLeave := false
		for _, m := range c.readMsgs(frames) {
			if m.event == "left" && c == observer {
				var p struct{ Topic, Reason string }
				if err := json.Unmarshal(m.payload, &p); err != nil || p.Topic != "test:d3" || p.Reason != "closed" {
					t.Fatalf("observer got %s, want test:d3 left with \"closed\"", m.text)
				}
				continue
			}
			var d presenceDiff
			expectPush(t, m, nil, "presence:d", "presence_diff", &d)
			if len(d.Joins) != 0 || !reflect.DeepEqual(d.Leaves.keys(), []string{"bob"}) {
				t.Fatalf("presence_diff %+v, want bob leaving", d)
			}
			sawLeave = true
		}
		if !sawLeave {
			t.Fatal("no presence_diff with bob's leave")
		}
	}
	for i, c := range []*wsClient{alicia, anon, kicker} {
		c.heartbeat(fmt.Sprint(50 + i))
	}
	if got := serverList(observer, "presence:d", "2", "60"); !reflect.DeepEqual(got.keys(), []string{"alicex", "anon", "observer"}) {
		t.Fatalf("presence after luachan.disconnect %+v, want alicex, anon and observer", got)
	}
}

// loginLua hands out tokens: luachan.token.sign with an exp a minute ahead.
const loginLua = `
return {
  topic = "login",
  join = function(topic, payload, socket)
    local exp = math.floor(luachan.now() / 1000) + 60
    return true, { token = luachan.token.sign({ sub = payload.user, exp = exp }) }
  end,
}
`

// TestTokenSignedByScript: a token a script signs is a standard HS256 JWT, with integer
// claims, that the example socket.lua accepts.
func TestTokenSignedByScript(t *testing.T) {
	t.Parallel()
	s := startServer(t, examplesPlus(t, map[string]string{"whoami.lua": whoamiLua, "login.lua": loginLua}), "-secret", testSecret)
	c := s.dial(t, "vsn=2.0.0")
	c.send(`["1","1","login","phx_join",{"user":"zoe"}]`)
	m := c.readMsg()
	var r struct{ Token string }
	if err := json.Unmarshal(m.replyResponse, &r); err != nil || m.replyStatus != "ok" || r.Token == "" {
		t.Fatalf("login reply %s (%v), want ok with a token", m.text, err)
	}

	parts := strings.Split(r.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not three dot-separated parts", r.Token)
	}
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("claims of %q: %v", r.Token, err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(claims, &got); err != nil {
		t.Fatalf("claims %s: %v", claims, err)
	}
	if string(got["sub"]) != `"zoe"` || strings.ContainsAny(string(got["exp"]), ".eE") || len(got) != 2 {
		t.Fatalf("claims %s, want sub zoe and an integer exp", claims)
	}
	// the signature is the one any JWT library computes
	if want := mintTokenSigned(t, testSecret, parts[0]+"."+parts[1]); parts[2] != want {
		t.Fatalf("signature %s, want HMAC-SHA256 %s", parts[2], want)
	}

	zoe := s.dial(t, "vsn=2.0.0&token="+url.QueryEscape(r.Token))
	zoe.join("whoami", "1", `{}`, `{"assigns":{"user":"zoe"},"id":"user_socket:zoe"}`)
}

// mintTokenSigned is the base64url HMAC-SHA256 signature of signing with secret.
func mintTokenSigned(tb testing.TB, secret, signing string) string {
	tb.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
