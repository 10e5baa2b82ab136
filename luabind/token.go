package luabind

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lua "github.com/yuin/gopher-lua"
)

const (
	// tokenLeeway is the clock skew allowed when checking a token's exp and nbf.
	tokenLeeway = 5 * time.Second
	// maxTokenSize is the longest token verify looks at; longer ones are malformed.
	maxTokenSize = 16 << 10
)

// Reasons luachan.token.verify gives, as its second result, for refusing a token.
const (
	reasonNoSecret    = "no secret configured"
	reasonNoToken     = "no token"
	reasonMalformed   = "malformed"
	reasonAlgorithm   = "unsupported algorithm"
	reasonSignature   = "bad signature"
	reasonExpired     = "expired"
	reasonNotValidYet = "not valid yet"
	reasonClaims      = "invalid claims"
)

// tokenParser checks HS256 tokens only (alg "none" and every other algorithm are refused),
// with exp and nbf honoured within tokenLeeway. A Parser is not changed by parsing, so one
// serves every VM.
var tokenParser = jwt.NewParser(
	jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
	jwt.WithLeeway(tokenLeeway),
)

// openToken builds luachan.token: sign and verify HS256 JWTs with Options.Secret.
func (v *vm) openToken() *lua.LTable {
	t := newTable(0, 2)
	t.RawSetString("sign", v.L.NewFunction(v.tokenSign))
	t.RawSetString("verify", v.L.NewFunction(v.tokenVerify))
	return t
}

// tokenSign is luachan.token.sign(claims): the HS256 JWT of claims, a table encoded like any
// payload (so number claims such as exp stay integers). Without a secret it raises an error.
func (v *vm) tokenSign(L *lua.LState) int {
	claims := L.CheckTable(1)
	secret := v.chunk.opts.Secret
	if len(secret) == 0 {
		L.RaiseError("luachan.token.sign needs the server's -secret")
	}
	data, err := encodeValue(claims, "claims")
	if err != nil {
		L.RaiseError("luachan.token.sign: %s", scriptMsg(err))
	}
	if data[0] != '{' {
		L.RaiseError("luachan.token.sign: claims must be a table with string keys, not a list")
	}
	m := jwt.MapClaims{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers are written back exactly as encoded
	if err := dec.Decode(&m); err != nil {
		L.RaiseError("luachan.token.sign: %s", err)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, m).SignedString(secret)
	if err != nil {
		L.RaiseError("luachan.token.sign: %s", err)
	}
	L.Push(lua.LString(token))
	return 1
}

// tokenVerify is luachan.token.verify(token): the claims table of a valid HS256 token signed
// with the server's secret, or nil and a reason (see the reason constants). It never raises:
// verify(params.token or info.auth_token) may well be verify(nil).
func (v *vm) tokenVerify(L *lua.LState) int {
	claims, reason := verifyToken(v.chunk.opts.Secret, L.Get(1))
	if reason != "" {
		L.Push(lua.LNil)
		L.Push(lua.LString(reason))
		return 2
	}
	L.Push(claims)
	return 1
}

// verifyToken checks token against secret and returns its claims, or a reason for refusing it.
func verifyToken(secret []byte, token lua.LValue) (lua.LValue, string) {
	if len(secret) == 0 {
		return nil, reasonNoSecret
	}
	s, ok := token.(lua.LString)
	if !ok || s == "" {
		return nil, reasonNoToken
	}
	if len(s) > maxTokenSize {
		return nil, reasonMalformed
	}
	tok, err := tokenParser.Parse(string(s), func(*jwt.Token) (any, error) { return secret, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, reasonMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable),
		tok != nil && tok.Method != nil && tok.Method.Alg() != jwt.SigningMethodHS256.Alg():
		return nil, reasonAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, reasonSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, reasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, reasonNotValidYet
	default:
		return nil, reasonClaims
	}
	// The claims again, through our own decoder: key order kept, integers stay integers.
	_, payload, _ := strings.Cut(string(s), ".")
	payload, _, _ = strings.Cut(payload, ".")
	data, err := tokenParser.DecodeSegment(payload)
	if err != nil {
		return nil, reasonMalformed
	}
	claims, err := decodeJSON(data)
	if err != nil {
		return nil, reasonMalformed
	}
	return claims, ""
}
