package luachan_test

// SPEC section 4: hot reload, seen from a connected client.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reloadWithin is the SPEC's "takes effect within 1 s", plus slack for a loaded -race run.
const reloadWithin = 1500 * time.Millisecond

// reloadLua is version v of a channel script counting events in socket.assigns.
func reloadLua(v int) string {
	return fmt.Sprintf(`local r = { topic = "reload:*" }
function r.join(topic, payload, socket)
  socket.assigns.count = 0
  return true
end
function r.handle_in(event, payload, socket)
  socket.assigns.count = socket.assigns.count + 1
  return "ok", { version = %d, count = socket.assigns.count }
end
return r
`, v)
}

// brokenLua fails to compile on line 3.
const brokenLua = "local r = { topic = \"reload:*\" }\nfunction r.join() return true end\nfunction r.handle_in() return ) end\nreturn r\n"

// counter sends events on a reload channel and checks the replies: every reply's count
// is one more than the last (assigns survive reloads).
type counter struct {
	c     *wsClient
	ref   int
	count int
}

// next sends one event and returns the version that answered it.
func (k *counter) next(tb testing.TB) int {
	tb.Helper()
	k.ref++
	ref := fmt.Sprint(k.ref)
	k.c.send(`["1","` + ref + `","reload:a","tick",{}]`)
	f := k.c.readArray()
	r, _ := f[4].(map[string]any)
	resp, _ := r["response"].(map[string]any)
	version, err1 := asInt(resp["version"])
	count, err2 := asInt(resp["count"])
	if f[1] != ref || r["status"] != "ok" || err1 != nil || err2 != nil {
		tb.Fatalf("reply %v, want ok {version, count} to ref %s", f, ref)
	}
	k.count++
	if int(count) != k.count {
		tb.Fatalf("count %d after %d events: assigns were not kept", count, k.count)
	}
	return int(version)
}

// waitVersion sends events until version v answers, failing after reloadWithin.
func (k *counter) waitVersion(tb testing.TB, v int) {
	tb.Helper()
	err := poll(reloadWithin, func() error {
		if got := k.next(tb); got != v {
			return fmt.Errorf("version %d answered, want %d", got, v)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func TestHotReload(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{"reload.lua": reloadLua(1)})
	path := filepath.Join(dir, "reload.lua")
	s := startServer(t, dir)
	c := s.dial(t, "vsn=2.0.0")
	c.join("reload:a", "1", `{}`, `{}`)
	k := &counter{c: c, ref: 1}
	if v := k.next(t); v != 1 {
		t.Fatalf("version %d before any change, want 1", v)
	}

	t.Run("written in place", func(t *testing.T) {
		writeFile(t, path, reloadLua(2))
		k.waitVersion(t, 2)
	})
	t.Run("a broken version keeps the old code and logs file and line", func(t *testing.T) {
		writeFile(t, path, brokenLua)
		s.log.waitFor(t, reloadWithin, "level=ERROR", "reload.lua:3")
		if v := k.next(t); v != 2 {
			t.Fatalf("version %d after a broken save, want 2", v)
		}
	})
	t.Run("renamed into place", func(t *testing.T) {
		tmp := filepath.Join(dir, ".reload.lua.swp")
		writeFile(t, tmp, reloadLua(3))
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		k.waitVersion(t, 3)
	})
	t.Run("a new script routes at once", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "fresh.lua"), strings.ReplaceAll(reloadLua(1), "reload:*", "fresh:*"))
		ref := 100
		err := poll(reloadWithin, func() error {
			ref++
			c.send(fmt.Sprintf(`["%d","%d","fresh:x","phx_join",{}]`, ref, ref))
			f := c.readArray()
			if r, _ := f[4].(map[string]any); r["status"] != "ok" {
				return fmt.Errorf("join fresh:x answered %v", f)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a deleted script closes its channels", func(t *testing.T) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		c.expect(`["1","1","reload:a","phx_close",{}]`)
		c.send(`["1","200","reload:a","tick",{}]`)
		c.expect(`[null,"200","reload:a","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`)
	})
}

// asInt returns v as an integer if it is a JSON integer.
func asInt(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%v is not a number", v)
	}
	return n.Int64()
}

func writeFile(tb testing.TB, path, src string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
}
