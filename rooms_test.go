package luachan_test

// SPEC section 7: the example scripts in scripts/examples, every row of the table.

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

// startExamples runs the server on scripts/examples itself.
func startExamples(tb testing.TB) *server {
	tb.Helper()
	dir, err := filepath.Abs(examplesDir)
	if err != nil {
		tb.Fatal(err)
	}
	return startServer(tb, dir)
}

// joinRoom joins a "rooms:<id>" topic as user and expects the ok reply, then the
// user:joined broadcast the room sends after every join, which reaches the joiner too.
func joinRoom(c *wsClient, topic, joinRef, user string) {
	c.tb.Helper()
	c.join(topic, joinRef, fmt.Sprintf(`{"user":%q}`, user), `{}`)
	c.expect(fmt.Sprintf(`[%q,null,%q,"user:joined",{"user_id":%q}]`, joinRef, topic, user))
}

func TestExampleLobby(t *testing.T) {
	t.Parallel()
	s := startExamples(t)
	anon := s.dial(t, "vsn=2.0.0")
	anon.join("rooms:lobby", "1", `{}`, `{}`)
	ann := s.dial(t, "vsn=2.0.0")
	ann.join("rooms:lobby", "2", `{"user":"ann"}`, `{}`)

	// payload.user became assigns.user: ann may edit her message, the anonymous visitor not
	ann.send(`["2","3","rooms:lobby","new:msg",{"uid":"ann","body":"hi"}]`)
	ann.expectAnyOrder(
		`["2",null,"rooms:lobby","new:msg",{"uid":"ann","body":"hi","is_editable":true}]`,
		`["2","3","rooms:lobby","phx_reply",{"status":"ok","response":{}}]`,
	)
	anon.expect(`["1",null,"rooms:lobby","new:msg",{"uid":"ann","body":"hi","is_editable":false}]`)
}

func TestExampleRoomJoin(t *testing.T) {
	t.Parallel()
	s := startExamples(t)
	refused := `["1","1","rooms:42","phx_reply",{"status":"error","response":{"reason":"unauthorized"}}]`
	tests := []struct{ name, payload string }{
		{"no user", `{}`},
		{"user not a string", `{"user":42}`},
		{"user null", `{"user":null}`},
		{"user a list", `{"user":["bob"]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dial(t, "vsn=2.0.0")
			c.send(`["1","1","rooms:42","phx_join",` + tc.payload + `]`)
			c.expect(refused)
			c.heartbeat("2") // no phx_close follows
		})
	}
	t.Run("user string, then user:joined", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		joinRoom(c, "rooms:42", "1", "bob")
		c.heartbeat("2")
	})
}

func TestExampleIgnoreList(t *testing.T) {
	t.Parallel()
	s := startExamples(t)
	const topic = "rooms:7"
	alice := s.dial(t, "vsn=2.0.0")
	alice.join(topic, "1", `{"user":"alice","ignore":["bob","eve"]}`, `{}`)
	alice.expect(`["1",null,"rooms:7","user:joined",{"user_id":"alice"}]`)

	carol := s.dial(t, "vsn=2.0.0")
	joinRoom(carol, topic, "1", "carol")
	alice.expect(`["1",null,"rooms:7","user:joined",{"user_id":"carol"}]`)

	bob := s.dial(t, "vsn=2.0.0")
	joinRoom(bob, topic, "1", "bob")
	carol.expect(`["1",null,"rooms:7","user:joined",{"user_id":"bob"}]`)

	// dave's arrival is the marker: alice gets it, and nothing about bob before it
	dave := s.dial(t, "vsn=2.0.0")
	joinRoom(dave, topic, "1", "dave")
	alice.expect(`["1",null,"rooms:7","user:joined",{"user_id":"dave"}]`)
	carol.expect(`["1",null,"rooms:7","user:joined",{"user_id":"dave"}]`)
	bob.expect(`["1",null,"rooms:7","user:joined",{"user_id":"dave"}]`)
}

func TestExampleSuperadmin(t *testing.T) {
	t.Parallel()
	s := startExamples(t)

	for _, payload := range []string{`{}`, `{"user":"bob"}`, `{"user":"Admin"}`} {
		t.Run("refused "+payload, func(t *testing.T) {
			c := s.dial(t, "vsn=2.0.0")
			c.send(`["1","1","rooms:superadmin","phx_join",` + payload + `]`)
			c.expect(`["1","1","rooms:superadmin","phx_reply",{"status":"error","response":{"reason":"unauthorized"}}]`)
			c.heartbeat("2")
		})
	}

	admin := s.dial(t, "vsn=2.0.0")
	admin.join("rooms:superadmin", "9", `{"user":"admin"}`, `{}`)

	t.Run("copy of new:msg from the lobby", func(t *testing.T) {
		ann := s.dial(t, "vsn=2.0.0")
		ann.join("rooms:lobby", "1", `{"user":"ann"}`, `{}`)
		ann.send(`["1","2","rooms:lobby","new:msg",{"uid":"ann","body":"from the lobby"}]`)
		ann.expectAnyOrder(
			`["1",null,"rooms:lobby","new:msg",{"uid":"ann","body":"from the lobby","is_editable":true}]`,
			`["1","2","rooms:lobby","phx_reply",{"status":"ok","response":{}}]`,
		)
		admin.expect(`["9",null,"rooms:superadmin","new:msg",{"uid":"ann","body":"from the lobby","is_editable":false}]`)
	})
	t.Run("copy of new:msg from rooms:12", func(t *testing.T) {
		bob := s.dial(t, "vsn=2.0.0")
		joinRoom(bob, "rooms:12", "1", "bob")
		bob.send(`["1","2","rooms:12","new:msg",{"uid":"bob","body":"from 12"}]`)
		bob.expectAnyOrder(
			`["1",null,"rooms:12","new:msg",{"uid":"bob","body":"from 12","is_editable":true}]`,
			`["1","2","rooms:12","phx_reply",{"status":"ok","response":{}}]`,
		)
		admin.expect(`["9",null,"rooms:superadmin","new:msg",{"uid":"bob","body":"from 12","is_editable":false}]`)
	})
	t.Run("its own new:msg arrives once", func(t *testing.T) {
		admin.send(`["9","10","rooms:superadmin","new:msg",{"uid":"admin","body":"mine"}]`)
		admin.expectAnyOrder(
			`["9",null,"rooms:superadmin","new:msg",{"uid":"admin","body":"mine","is_editable":true}]`,
			`["9","10","rooms:superadmin","phx_reply",{"status":"ok","response":{}}]`,
		)
		admin.heartbeat("11")
	})
}

func TestExampleNewMsgIsEditable(t *testing.T) {
	t.Parallel()
	s := startExamples(t)
	const topic = "rooms:9"
	alice := s.dial(t, "vsn=2.0.0")
	joinRoom(alice, topic, "1", "alice")
	bob := s.dial(t, "vsn=2.0.0")
	joinRoom(bob, topic, "5", "bob")
	alice.expect(`["1",null,"rooms:9","user:joined",{"user_id":"bob"}]`)

	alice.send(`["1","2","rooms:9","new:msg",{"uid":"alice","body":"hello"}]`)
	alice.expectAnyOrder(
		`["1",null,"rooms:9","new:msg",{"uid":"alice","body":"hello","is_editable":true}]`,
		`["1","2","rooms:9","phx_reply",{"status":"ok","response":{}}]`,
	)
	bob.expect(`["5",null,"rooms:9","new:msg",{"uid":"alice","body":"hello","is_editable":false}]`)

	bob.send(`["5","6","rooms:9","new:msg",{"uid":"bob","body":"hey"}]`)
	bob.expectAnyOrder(
		`["5",null,"rooms:9","new:msg",{"uid":"bob","body":"hey","is_editable":true}]`,
		`["5","6","rooms:9","phx_reply",{"status":"ok","response":{}}]`,
	)
	alice.expect(`["1",null,"rooms:9","new:msg",{"uid":"bob","body":"hey","is_editable":false}]`)
}

func TestExampleCurrentRank(t *testing.T) {
	t.Parallel()
	s := startExamples(t)
	alice := s.dial(t, "vsn=2.0.0")
	joinRoom(alice, "rooms:5", "1", "alice")
	bob := s.dial(t, "vsn=2.0.0")
	joinRoom(bob, "rooms:5", "3", "bob")
	alice.expect(`["1",null,"rooms:5","user:joined",{"user_id":"bob"}]`)

	alice.send(`["1","2","rooms:5","current:rank",{}]`)
	var pushed, replied json.Number
	for range 2 {
		f := alice.readArray()
		switch {
		case f[3] == "current:rank" && f[0] == "1" && f[1] == nil && f[2] == "rooms:5":
			pushed = rankVal(t, f[4])
		case f[3] == "phx_reply" && f[0] == "1" && f[1] == "2" && f[2] == "rooms:5":
			r, _ := f[4].(map[string]any)
			if r["status"] != "ok" {
				t.Fatalf("current:rank reply %v, want status ok", f)
			}
			replied = rankVal(t, r["response"])
		default:
			t.Fatalf("unexpected frame %v, want the current:rank push and its reply", f)
		}
	}
	if pushed == "" || replied == "" || pushed != replied {
		t.Fatalf("pushed val %q, replied val %q: want both, equal", pushed, replied)
	}
	// the push went to the caller only
	bob.heartbeat("4")
}

// rankVal returns n from a {"val": n} payload, failing unless n is a number.
func rankVal(tb testing.TB, payload any) json.Number {
	tb.Helper()
	m, _ := payload.(map[string]any)
	n, ok := m["val"].(json.Number)
	if !ok || len(m) != 1 {
		tb.Fatalf("payload %v, want {\"val\": <number>}", payload)
	}
	return n
}

func TestExampleTyping(t *testing.T) {
	t.Parallel()
	s := startExamples(t)
	const topic = "rooms:3"
	alice := s.dial(t, "vsn=2.0.0")
	joinRoom(alice, topic, "1", "alice")
	bob := s.dial(t, "vsn=2.0.0")
	joinRoom(bob, topic, "1", "bob")
	alice.expect(`["1",null,"rooms:3","user:joined",{"user_id":"bob"}]`)

	alice.send(`["1","2","rooms:3","typing",{"uid":"alice"}]`)
	bob.expect(`[null,null,"rooms:3","typing",{"uid":"alice"}]`)
	// alice's own typing never comes back to her (and typing has no reply)
	alice.heartbeat("3")

	bob.send(`["1","2","rooms:3","typing",{"uid":"bob"}]`)
	alice.expect(`[null,null,"rooms:3","typing",{"uid":"bob"}]`)
	bob.heartbeat("3")
}
