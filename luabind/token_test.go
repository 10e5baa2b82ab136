package luabind_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/luachan/luachan/luabind"
)

var testSecret = []byte("test-secret-0123456789")

// tokenScript signs the payload's claims on "sign", and verifies the payload's token on
// "verify", replying {claims = ..., reason = ...}.
const tokenScript = `return { topic = 'a', join = function() return true end,
	handle_in = function(event, p)
		if event == "sign" then return "ok", { token = luachan.token.sign(p.claims) } end
		if event == "sign list" then return "ok", { token = luachan.token.sign({ 1, 2 }) } end
		if event == "sign function" then return "ok", { token = luachan.token.sign({ f = print }) } end
		if event == "verify nil" then
			local claims, reason = luachan.token.verify(nil)
			return "ok", { claims = claims, reason = reason }
		end
		local claims, reason = luachan.token.verify(p.token)
		return "ok", { claims = claims, reason = reason, exp_is_int = claims ~= nil and claims.exp ~= nil and claims.exp % 1 == 0 }
	end }`

// mint makes a token with jwt/v5 directly, as a backend in another language would.
func mint(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// verifyReply runs tokenScript's verify on token and returns the reply.
func verifyReply(tb testing.TB, s *luabind.Script, token string) string {
	tb.Helper()
	p, _ := json.Marshal(map[string]string{"token": token})
	_, reply, err := s.HandleIn(testContext(tb), newFakeSocket("a"), nil, "verify", luabind.Payload{Data: p})
	if err != nil {
		tb.Fatal(err)
	}
	return string(reply.Data)
}

func TestTokenVerify(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.Secret = testSecret
	s := mustLoad(t, opts, tokenScript)
	now := time.Now().Unix()

	good := mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42", "exp": now + 60, "room": "lobby"})
	header, rest, _ := strings.Cut(good, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"exp":` + jsonInt(now+60) + `,"room":"lobby","sub":"1"}`))
	rs256Header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))

	tests := []struct {
		name, token, want string
	}{
		{"minted by jwt/v5", good, `{"claims":{"exp":` + jsonInt(now+60) + `,"room":"lobby","sub":"42"},"exp_is_int":true}`},
		{"no exp", mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "x"}), `{"claims":{"sub":"x"},"exp_is_int":false}`},
		{"expired", mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": now - 60}), `{"reason":"expired","exp_is_int":false}`},
		{"expired within the leeway", mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": now - 2}), `{"claims":{"exp":` + jsonInt(now-2) + `},"exp_is_int":true}`},
		{"not valid yet", mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"nbf": now + 60}), `{"reason":"not valid yet","exp_is_int":false}`},
		{"nbf within the leeway", mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"nbf": now + 2}), `{"claims":{"nbf":` + jsonInt(now+2) + `},"exp_is_int":false}`},
		{"exp not a number", mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": "soon"}), `{"reason":"invalid claims","exp_is_int":false}`},
		{"tampered claims", header + "." + forged + "." + sig, `{"reason":"bad signature","exp_is_int":false}`},
		{"tampered signature", header + "." + payload + "." + strings.Repeat("A", len(sig)), `{"reason":"bad signature","exp_is_int":false}`},
		{"other secret", mint(t, jwt.SigningMethodHS256, []byte("other"), jwt.MapClaims{"sub": "42"}), `{"reason":"bad signature","exp_is_int":false}`},
		{"alg none", mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "42"}), `{"reason":"unsupported algorithm","exp_is_int":false}`},
		{"alg none, empty signature", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + payload + ".", `{"reason":"unsupported algorithm","exp_is_int":false}`},
		{"HS512", mint(t, jwt.SigningMethodHS512, testSecret, jwt.MapClaims{"sub": "42"}), `{"reason":"unsupported algorithm","exp_is_int":false}`},
		{"RS256 header", rs256Header + "." + payload + "." + sig, `{"reason":"unsupported algorithm","exp_is_int":false}`},
		{"unknown alg", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XX1"}`)) + "." + payload + "." + sig, `{"reason":"unsupported algorithm","exp_is_int":false}`},
		{"two segments", header + "." + payload, `{"reason":"malformed","exp_is_int":false}`},
		{"not base64", "!!.!!.!!", `{"reason":"malformed","exp_is_int":false}`},
		{"garbage", "hello", `{"reason":"malformed","exp_is_int":false}`},
		{"too long", header + "." + strings.Repeat("A", 20000) + "." + sig, `{"reason":"malformed","exp_is_int":false}`},
		{"empty", "", `{"reason":"no token","exp_is_int":false}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assertJSON(t, []byte(verifyReply(t, s, tc.token)), tc.want)
		})
	}
	_, reply, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "verify nil", jsonPayload(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, reply.Data, `{"reason":"no token"}`)
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestTokenSign(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.Secret = testSecret
	s := mustLoad(t, opts, tokenScript)
	ctx := testContext(t)
	exp := time.Now().Unix() + 3600

	_, reply, err := s.HandleIn(ctx, newFakeSocket("a"), nil, "sign", jsonPayload(`{"claims":{"sub":"u1","exp":`+jsonInt(exp)+`,"f":1.5,"big":9007199254740992,"list":[1,"two"],"z":null}}`))
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(reply.Data, &out); err != nil {
		t.Fatal(err)
	}

	// jwt/v5 accepts it, as a backend would, and sees the numbers exactly.
	parsed, err := jwt.Parse(out.Token, func(*jwt.Token) (any, error) { return testSecret, nil }, jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Fatalf("jwt/v5 refused %s: %v", out.Token, err)
	}
	if parsed.Header["alg"] != "HS256" {
		t.Errorf("header %v", parsed.Header)
	}
	_, payload, _ := strings.Cut(out.Token, ".")
	payload, _, _ = strings.Cut(payload, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{`"exp":` + jsonInt(exp), `"f":1.5`, `"big":9007199254740992`, `"list":[1,"two"]`, `"sub":"u1"`, `"z":null`} {
		if !strings.Contains(string(raw), part) {
			t.Errorf("claims %s lack %s", raw, part)
		}
	}

	// And our own verify reads it back.
	got := verifyReply(t, s, out.Token)
	if !strings.Contains(got, `"exp":`+jsonInt(exp)) || !strings.Contains(got, `"exp_is_int":true`) || !strings.Contains(got, `"sub":"u1"`) {
		t.Errorf("verify gave %s", got)
	}

	for event, want := range map[string]string{
		"sign list":     "claims must be a table with string keys",
		"sign function": "cannot encode function at claims.f",
	} {
		_, _, err := s.HandleIn(ctx, newFakeSocket("a"), nil, event, jsonPayload(`{}`))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", event, err, want)
		}
	}
}

func TestTokenNoSecret(t *testing.T) {
	opts, _, _ := testOptions(t)
	s := mustLoad(t, opts, tokenScript)
	_, _, err := s.HandleIn(testContext(t), newFakeSocket("a"), nil, "sign", jsonPayload(`{"claims":{"sub":"u1"}}`))
	if se := asScriptError(t, err); !strings.Contains(se.Msg, "luachan.token.sign needs the server's -secret") || se.Line == 0 {
		t.Errorf("got %#v", se)
	}
	token := mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42"})
	assertJSON(t, []byte(verifyReply(t, s, token)), `{"reason":"no secret configured","exp_is_int":false}`)
}

// TestConnectWithToken is SPEC section 3's socket.lua: a token in the params or as the
// WebSocket auth token decides who connects, and names the socket.
func TestConnectWithToken(t *testing.T) {
	opts, _, _ := testOptions(t)
	opts.Secret = testSecret
	c := mustLoadConnect(t, opts, `return {
  connect = function(params, info)
    local claims = luachan.token.verify(params.token or info.auth_token)
    if not claims then return false end
    return true, { user_id = claims.sub }, "user_socket:" .. claims.sub
  end,
}`)
	token := mint(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "42", "exp": time.Now().Unix() + 60})
	for _, tc := range []struct {
		name   string
		params map[string]string
		info   luabind.ConnectInfo
		wantOK bool
	}{
		{"param", map[string]string{"token": token}, luabind.ConnectInfo{}, true},
		{"auth token", nil, luabind.ConnectInfo{AuthToken: token}, true},
		{"none", nil, luabind.ConnectInfo{}, false},
		{"bad", map[string]string{"token": token + "x"}, luabind.ConnectInfo{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, a, id, err := c.Connect(testContext(t), tc.params, tc.info)
			if err != nil || ok != tc.wantOK {
				t.Fatalf("ok %v err %v", ok, err)
			}
			if !ok {
				return
			}
			data, _ := a.JSON()
			if id != "user_socket:42" || string(data) != `{"user_id":"42"}` {
				t.Errorf("id %q assigns %s", id, data)
			}
		})
	}
}
