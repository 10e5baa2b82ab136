package engine

import "testing"

// presenceLua tracks each socket under the user its join names.
const presenceLua = `local p = { topic = "presence:*" }

function p.join(topic, payload, socket)
  luachan.presence.track(socket, payload.user, { user = payload.user })
  return true
end

return p
`

// TestPresence: a join's track sends the joiner presence_state and every
// subscriber a presence_diff; a channel that ends is untracked by itself.
func TestPresence(t *testing.T) {
	r := startRig(t, map[string]string{"presence.lua": presenceLua})
	alice, bob := r.dial(t), r.dial(t)

	alice.send(`["1","1","presence:1","phx_join",{"user":"alice"}]`)
	alice.expect(`["1","1","presence:1","phx_reply",{"status":"ok","response":{}}]`)
	expectUsers(t, alice.expectPush("presence:1", "presence_state"), "alice")
	expectUsers(t, alice.expectPush("presence:1", "presence_diff")["joins"], "alice")

	bob.send(`["1","1","presence:1","phx_join",{"user":"bob"}]`)
	bob.expect(`["1","1","presence:1","phx_reply",{"status":"ok","response":{}}]`)
	expectUsers(t, bob.expectPush("presence:1", "presence_state"), "alice", "bob")
	expectUsers(t, bob.expectPush("presence:1", "presence_diff")["joins"], "bob")
	expectUsers(t, alice.expectPush("presence:1", "presence_diff")["joins"], "bob")

	bob.send(`["1","2","presence:1","phx_leave",{}]`)
	bob.expect(`["1","2","presence:1","phx_reply",{"status":"ok","response":{}}]`)
	diff := alice.expectPush("presence:1", "presence_diff")
	expectUsers(t, diff["leaves"], "bob")
	expectUsers(t, diff["joins"])
}

// expectUsers requires v, a presence_state or a diff's joins or leaves, to
// hold exactly users, each with one meta naming it.
func expectUsers(tb testing.TB, v any, users ...string) {
	tb.Helper()
	m, _ := v.(map[string]any)
	if len(m) != len(users) {
		tb.Fatalf("presence %v, want users %v", v, users)
	}
	for _, u := range users {
		e, _ := m[u].(map[string]any)
		metas, _ := e["metas"].([]any)
		if len(metas) != 1 || metas[0].(map[string]any)["user"] != u {
			tb.Fatalf("presence of %s: %v, want one meta naming it", u, m[u])
		}
	}
}
