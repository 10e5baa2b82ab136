package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReload: a changed script serves the next event of a channel already
// joined, with its assigns intact; a broken version never replaces a working
// one; a deleted script closes its channels (phx_close) and routes no more.
func TestReload(t *testing.T) {
	r := startRig(t, map[string]string{"rooms.lua": roomsLua("v1", "rooms:*")})
	c := r.dial(t)
	c.join("rooms:1", "1")
	c.send(`["1","2","rooms:1","hi",{}]`)
	c.expect(`["1","2","rooms:1","phx_reply",{"status":"ok","response":{"script":"v1","event":"hi"}}]`)

	t.Run("changed", func(t *testing.T) {
		v2 := strings.Replace(roomsLua("v1", "rooms:*"), `event = event`, `event = event .. "!"`, 1)
		r.writeScript(t, "rooms.lua", v2)
		r.reload(t)
		c.send(`["1","3","rooms:1","hi",{}]`)
		c.expect(`["1","3","rooms:1","phx_reply",{"status":"ok","response":{"script":"v1","event":"hi!"}}]`)
	})

	t.Run("broken", func(t *testing.T) {
		r.writeScript(t, "rooms.lua", "this is not lua")
		r.reload(t)
		c.send(`["1","4","rooms:1","hi",{}]`)
		c.expect(`["1","4","rooms:1","phx_reply",{"status":"ok","response":{"script":"v1","event":"hi!"}}]`)
		if n := r.eng.count.loadErrors.Load(); n != 1 {
			t.Errorf("load errors counted: %d, want 1", n)
		}
	})

	t.Run("deleted", func(t *testing.T) {
		if err := os.Remove(filepath.Join(r.dir, "rooms.lua")); err != nil {
			t.Fatal(err)
		}
		r.reload(t)
		c.expect(`["1","1","rooms:1","phx_close",{}]`)
		c.send(`["5","5","rooms:1","phx_join",{}]`)
		c.expect(`[null,"5","rooms:1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
		waitFor(t, "the closed channel to end", func() bool { return r.eng.count.channels.Load() == 0 })
	})
}
