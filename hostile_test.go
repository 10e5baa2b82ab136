package luachan_test

// Issue 4 through the real binary: hostile scripts, each on its own topic while a healthy
// topic keeps answering; a slow consumer among fast ones; SIGTERM with a script whose leave
// never returns; and every limit flag of `luachan -h`, hit from a client.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// hostileLua is one channel per bomb: topic "bomb:<name>" sets off bombs[name] on any event
// but "ping". Each bomb sits on a line of its own, so the line a log names is the bomb's.
const hostileLua = `-- one topic per bomb: "bomb:<name>"
local h = { topic = "bomb:*" }
local bombs = {}
bombs.rep = function() return "ok", { n = #string.rep("x", 2^31) } end
bombs.bigindex = function() local t = {} t[67108863] = true return "ok", { set = t[67108863] } end
bombs.lazyfind = function() return "ok", { r = ("a"):rep(3e4):find(".-b") } end
bombs.nestedlazy = function() return "ok", { r = string.find(("a"):rep(5000), ("a-"):rep(12) .. "b") } end
bombs.loop = function() while true do end end
bombs.recursion = function() local function f(n) return 1 + f(n + 1) end return "ok", { n = f(1) } end
bombs.coroutine = function() if coroutine ~= nil then local pile = {} while true do local co = coroutine.create(function() coroutine.yield() end) coroutine.resume(co) pile[#pile + 1] = co end end return "ok", { coroutine = type(coroutine) } end
bombs.doubling = function() local s = ("x"):rep(2^22 + 1) while true do s = s .. s end end
bombs.concat = function() local keep, s = {}, ("x"):rep(1e4) while true do keep[#keep + 1] = s .. #keep end end
bombs.tablegrowth = function() local t = {} while true do t[#t + 1] = #t end end
bombs.getfenv = function() return "ok", { g = getfenv(pairs) } end
bombs.requireos = function() return "ok", { os = require("os") } end
bombs.dump = function() return "ok", { code = string.dump(bombs.loop) } end
bombs.metag = function() setmetatable(_G, { __index = function() return "pwned" end }) return "ok" end
bombs.stringlib = function() string.upper = function() return "pwned" end return "ok" end
bombs.errortable = function() error({ code = 42, why = "a table" }) end
bombs.nonsense = function() return 42 end
bombs.toomany = function() return "ok", {}, "extra" end
bombs.badresponse = function() return "ok", 42 end
bombs.cycle = function() local t = {} t.self = t return "ok", t end
bombs.funcvalue = function() return "ok", { f = print } end
bombs.pushfunc = function(socket) socket:push("x", { f = print }) return "ok" end
bombs.heap = function() local keep = {} for i = 1, 1e6 do keep[i] = ("x"):rep(8e6 + i) end end
bombs.globals = function(socket, event) if event == "write" then leaked = "secret" _G.leaked_too = "secret" rawset(_G, "leaked_raw", "secret") return "ok", { during = leaked } end return "ok", { leaked = type(leaked), leaked_too = type(leaked_too), leaked_raw = type(leaked_raw) } end

function h.join(topic, payload, socket)
  if payload.nonsense then return "yes" end
  return true
end

function h.handle_in(event, payload, socket)
  if event == "ping" then return "ok", { pong = true } end
  local bomb = bombs[string.sub(socket.topic, #"bomb:" + 1)]
  return bomb(socket, event)
end

return h
`

// spyLua is another channel script that looks for what hostileLua may have left behind,
// and for what the sandbox must not offer.
const spyLua = `local spy = { topic = "spy" }
local forbidden = { "os", "io", "debug", "coroutine", "package", "load", "loadstring", "dofile",
  "loadfile", "getfenv", "setfenv", "collectgarbage", "_printregs", "module", "newproxy" }

function spy.join() return true end

function spy.handle_in(event, payload, socket)
  if event == "sandbox" then
    local r = {}
    for _, name in ipairs(forbidden) do r[name] = type(_G[name]) end
    r["string.dump"] = type(string.dump)
    r["require os"] = (pcall(require, "os"))
    r["require escape"] = (pcall(require, "lib.x/../../../etc/passwd"))
    return "ok", r
  end
  return "ok", { leaked = type(leaked), leaked_too = type(leaked_too), leaked_raw = type(leaked_raw),
    upper = string.upper("a"), unknown = type(no_such_global) }
end

return spy
`

// outLua broadcasts "boom" on any event; its handle_out, which intercepts "boom", raises.
const outLua = `local o = { topic = "out:*", intercept = { "boom" } }
function o.join() return true end
function o.handle_in(event, payload, socket)
  if event == "ping" then return "ok", { pong = true } end
  socket:broadcast("boom", {})
  return "ok"
end
function o.handle_out(event, payload, socket)
  error("handle_out blew up on " .. event)
end
return o
`

// leaveLua's leave raises.
const leaveLua = `local l = { topic = "leave:*" }
function l.join() return true end
function l.handle_in() return "ok", { pong = true } end
function l.leave(reason, socket)
  error("leave blew up on " .. reason)
end
return l
`

// healthyLua answers every event with its payload.
const healthyLua = `return { topic = "healthy", join = function() return true end,
  handle_in = function(event, payload) return "ok", payload end }
`

// luaLine returns the 1-based line of src holding marker, failing if there is none.
func luaLine(tb testing.TB, src, marker string) int {
	tb.Helper()
	i := strings.Index(src, marker)
	if i < 0 {
		tb.Fatalf("no %q in the script", marker)
	}
	return 1 + strings.Count(src[:i], "\n")
}

// errorLines returns the warn and error lines about topic.
func errorLines(l *logSink, topic string) []string {
	var lines []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, "topic="+topic+" ") &&
			(strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN")) {
			lines = append(lines, line)
		}
	}
	return lines
}

// expectOneErrorLine waits for the single warn or error line about topic and requires it to
// hold every one of subs (file:line among them).
func expectOneErrorLine(tb testing.TB, l *logSink, topic string, subs ...string) {
	tb.Helper()
	err := poll(readTimeout, func() error {
		if len(errorLines(l, topic)) == 0 {
			return fmt.Errorf("no error line about %s", topic)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	lines := errorLines(l, topic)
	if len(lines) != 1 || !containsAll(lines[0], subs) {
		tb.Fatalf("want one error line about %s holding %q, got %d:\n%s", topic, subs, len(lines), strings.Join(lines, "\n"))
	}
}

// echoLoad is what a healthy client saw while pushing.
type echoLoad struct {
	sent, answered int
	slowest        time.Duration
	err            error
}

// pushEchoes sends an echo to topic every interval (below the default -max-rate) on conn,
// waiting for each reply, until stop is closed. It uses conn directly: it runs outside the
// test's goroutine, so it reports problems instead of failing.
func pushEchoes(conn *websocket.Conn, topic, joinRef string, interval time.Duration, stop <-chan struct{}) echoLoad {
	var r echoLoad
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return r
		case <-tick.C:
		}
		r.sent++
		ref := strconv.Itoa(100 + r.sent)
		msg := fmt.Sprintf(`[%q,%q,%q,"echo",{"n":%d}]`, joinRef, ref, topic, r.sent)
		want := fmt.Sprintf(`[%q,%q,%q,"phx_reply",{"status":"ok","response":{"n":%d}}]`, joinRef, ref, topic, r.sent)
		start := time.Now()
		_ = conn.SetWriteDeadline(start.Add(writeTimeout))
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			r.err = fmt.Errorf("echo %d: write: %w", r.sent, err)
			return r
		}
		_ = conn.SetReadDeadline(start.Add(readTimeout))
		_, data, err := conn.ReadMessage()
		if err != nil {
			r.err = fmt.Errorf("echo %d: no reply: %w", r.sent, err)
			return r
		}
		if m := mismatch(want, frame{data: data}); m != "" {
			r.err = fmt.Errorf("echo %d: got %s, want %s", r.sent, data, want)
			return r
		}
		r.answered++
		r.slowest = max(r.slowest, time.Since(start))
	}
}

// memWatch samples the server's heap (go_memstats_heap_inuse_bytes from /metrics) until
// stopped, keeping the peak.
type memWatch struct {
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	heapPeak atomic.Uint64
	errs     atomic.Int64 // failed samples
}

func watchMemory(s *server) *memWatch {
	w := &memWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			if h, err := s.heapInuse(); err == nil {
				w.heapPeak.Store(max(w.heapPeak.Load(), h))
			} else {
				w.errs.Add(1)
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// peak stops sampling and returns the largest heap seen, in bytes.
func (w *memWatch) peak() uint64 {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
	return w.heapPeak.Load()
}

var heapInuseRE = regexp.MustCompile(`(?m)^go_memstats_heap_inuse_bytes (\S+)$`)

// heapInuse reads go_memstats_heap_inuse_bytes from /metrics.
func (s *server) heapInuse() (uint64, error) {
	resp, err := httpClient.Get(s.url("/metrics"))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := heapInuseRE.FindSubmatch(body)
	if m == nil {
		return 0, errors.New("no go_memstats_heap_inuse_bytes in /metrics")
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	return uint64(f), err
}

// peakRSS reads the most the process's resident set has been, from /proc/PID/status.
func (s *server) peakRSS() (uint64, error) { return s.procStatus("VmHWM:") }

// procStatus reads one size field of /proc/PID/status, in bytes.
func (s *server) procStatus(field string) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s line", field)
}

// metricValue reads one sample of /metrics, e.g. `luachan_connections_closed_total{reason="slow"}`.
func (s *server) metricValue(tb testing.TB, name string) float64 {
	tb.Helper()
	resp, err := httpClient.Get(s.url("/metrics"))
	if err != nil {
		tb.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET /metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				tb.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	tb.Fatalf("no metric %s in /metrics:\n%s", name, body)
	return 0
}

// expectMetric waits for the metric to reach want (a connection is counted when it has
// ended, which may be a little after its close frame) and requires it to stay there.
func (s *server) expectMetric(tb testing.TB, name string, want float64) {
	tb.Helper()
	var got float64
	_ = poll(readTimeout, func() error {
		if got = s.metricValue(tb, name); got < want {
			return errors.New("not yet")
		}
		return nil
	})
	if got != want {
		tb.Errorf("%s = %v, want %v", name, got, want)
	}
}

const (
	// memLimit is the GOMEMLIMIT the hostile-script server runs with.
	memLimit = 512 << 20
	// maxHeapGrowth bounds the server's heap while every bomb goes off at once.
	maxHeapGrowth = 512 << 20
	// bombTime bounds how long a bomb may take to end its channel: the 250 ms budget, and
	// slack for -race on a busy machine.
	bombTime = 5 * time.Second
	// healthyInterval paces the healthy client below the default -max-rate of 100/s.
	healthyInterval = 20 * time.Millisecond
)

// TestHostileScripts sets off every bomb of issue 4 at once, each on its own topic, while a
// healthy client keeps pushing to a healthy topic of the same server.
func TestHostileScripts(t *testing.T) {
	t.Parallel()
	// A Go memory limit sets the heap watchdog's bound (three quarters of it) and makes the
	// collector keep the heap under the limit, as an operator would run it.
	s := startServerEnv(t, []string{"GOMEMLIMIT=" + strconv.Itoa(memLimit)}, writeScripts(t, map[string]string{
		"hostile.lua": hostileLua, "spy.lua": spyLua, "out.lua": outLua,
		"leave.lua": leaveLua, "healthy.lua": healthyLua,
	}))
	heapBefore, err := s.heapInuse()
	if err != nil {
		t.Fatal(err)
	}
	mem := watchMemory(s)
	defer mem.peak()

	healthy := s.dial(t, "vsn=2.0.0")
	healthy.join("healthy", "1", `{}`, `{}`)
	stop := make(chan struct{})
	load := make(chan echoLoad, 1)
	go func() { load <- pushEchoes(healthy.conn, "healthy", "1", healthyInterval, stop) }()

	crash := func(topic string) []string {
		return []string{fmt.Sprintf(`["1","1",%q,"phx_error",{"reason":"channel_crash"}]`, topic)}
	}
	reply := func(body string) func(string) []string {
		return func(topic string) []string {
			return []string{fmt.Sprintf(`["1","2",%q,"phx_reply",{"status":"ok","response":%s}]`, topic, body)}
		}
	}
	handleIn := luaLine(t, hostileLua, "function h.handle_in")
	type bomb struct {
		name     string
		topic    string                      // "bomb:"+name when empty
		trigger  string                      // the frame that sets it off (%q is the topic); a "go" event when empty
		want     func(topic string) []string // the frames that answer it, in order
		callback string                      // the callback the error line names ("handle_in" when empty); "" and no errMsg: none
		file     string                      // the script the error line names, "hostile.lua" when empty
		line     int                         // the line it names; 0: the bomb's own line
		errMsg   string                      // part of the error line; "" with a reply: no error line
		errAlt   string                      // what may stand in errMsg's place
	}
	bombs := []bomb{
		{name: "rep", want: crash, errMsg: "string.rep: the result would be longer than"},
		{name: "bigindex", want: reply(`{"set":true}`)},
		{name: "lazyfind", want: crash, errMsg: "ran out of time (CPU budget 250ms)"},
		{name: "nestedlazy", want: crash, errMsg: "ran out of time (CPU budget 250ms)"},
		{name: "loop", want: crash, errMsg: "ran out of time (CPU budget 250ms)"},
		{name: "recursion", want: crash, errMsg: "stack overflow"},
		{name: "coroutine", want: reply(`{"coroutine":"nil"}`)},
		// the cap ends it at once, or a starved CPU first
		{name: "doubling", want: crash, errMsg: "concatenation: the result would be longer than", errAlt: "ran out of time"},
		{name: "concat", want: crash, errMsg: "hostile.lua"}, // the budget or the heap watchdog
		{name: "tablegrowth", want: crash, errMsg: "hostile.lua"},
		{name: "getfenv", want: crash, errMsg: "attempt to call"},
		{name: "requireos", want: crash, errMsg: "module 'os' not found"},
		{name: "dump", want: crash, errMsg: "attempt to call"},
		{name: "metag", want: crash, errMsg: "cannot change a protected metatable"},
		{name: "stringlib", want: crash, errMsg: "read-only"},
		{name: "errortable", want: crash, errMsg: `{\"code\":42,\"why\":\"a table\"}`},
		{name: "nonsense", want: crash, line: handleIn, errMsg: "handle_in must return nothing or a status string, got number"},
		{name: "toomany", want: crash, line: handleIn, errMsg: "handle_in must return at most 2 values (status, response), got 3"},
		{name: "badresponse", want: crash, line: handleIn, errMsg: "handle_in reply must be a table or a string, got number"},
		{name: "cycle", want: crash, line: handleIn, errMsg: "cannot encode a cycle at reply.self"},
		{name: "funcvalue", want: crash, line: handleIn, errMsg: "cannot encode function at reply.f"},
		{name: "pushfunc", want: crash, errMsg: "cannot encode function at payload.f"},
		{
			name: "join returning nonsense", topic: "bomb:joinnonsense", trigger: `["1","1",%q,"phx_join",{"nonsense":true}]`,
			want: func(topic string) []string {
				return []string{fmt.Sprintf(`["1","1",%q,"phx_reply",{"status":"error","response":{"reason":"join crashed"}}]`, topic)}
			},
			callback: "join", line: luaLine(t, hostileLua, "function h.join"), errMsg: "join must return true or false, got string",
		},
		{
			name: "error in handle_out", topic: "out:x", trigger: `["1","2",%q,"fire",{}]`,
			want: func(topic string) []string {
				return []string{
					fmt.Sprintf(`["1","2",%q,"phx_reply",{"status":"ok","response":{}}]`, topic),
					fmt.Sprintf(`["1","1",%q,"phx_error",{"reason":"channel_crash"}]`, topic),
				}
			},
			callback: "handle_out", file: "out.lua", line: luaLine(t, outLua, `error("handle_out blew up`), errMsg: "handle_out blew up on boom",
		},
		{
			name: "error in leave", topic: "leave:x", trigger: `["1","2",%q,"phx_leave",{}]`,
			want: func(topic string) []string {
				return []string{
					fmt.Sprintf(`["1","2",%q,"phx_reply",{"status":"ok","response":{}}]`, topic),
					fmt.Sprintf(`["1","1",%q,"phx_close",{}]`, topic),
				}
			},
			callback: "leave", file: "leave.lua", line: luaLine(t, leaveLua, `error("leave blew up`), errMsg: "leave blew up on leave",
		},
	}

	// Join every bomb's topic, then set them all off at once.
	clients := make([]*wsClient, len(bombs))
	for i, b := range bombs {
		if b.topic == "" {
			bombs[i].topic = "bomb:" + b.name
		}
		if b.trigger == "" {
			bombs[i].trigger = `["1","2",%q,"go",{}]`
		}
		clients[i] = s.dial(t, "vsn=2.0.0")
		if !strings.Contains(bombs[i].trigger, "phx_join") {
			clients[i].join(bombs[i].topic, "1", `{}`, `{}`)
		}
	}
	start := time.Now()
	for i, b := range bombs {
		clients[i].send(fmt.Sprintf(b.trigger, b.topic))
	}

	// While the slow ones run: globals do not outlive their call, and the sandbox holds.
	t.Run("globals stay in their call", func(t *testing.T) {
		const topic = "bomb:globals"
		c := s.dial(t, "vsn=2.0.0")
		c.join(topic, "1", `{}`, `{}`)
		spy := s.dial(t, "vsn=2.0.0")
		spy.join("spy", "1", `{}`, `{}`)
		for i := range 5 {
			ref := fmt.Sprint(10 + 2*i)
			c.send(`["1","` + ref + `","bomb:globals","write",{}]`)
			c.expect(`["1","` + ref + `","bomb:globals","phx_reply",{"status":"ok","response":{"during":"secret"}}]`)
			// the next call of the same script, most likely on the same pooled VM
			c.send(`["1","` + ref + `1","bomb:globals","read",{}]`)
			c.expect(`["1","` + ref + `1","bomb:globals","phx_reply",{"status":"ok","response":{"leaked":"nil","leaked_too":"nil","leaked_raw":"nil"}}]`)
			// another channel, of another script: nor do the libraries change, or _G's metatable
			spy.send(`["1","` + ref + `","spy","look",{}]`)
			spy.expect(`["1","` + ref + `","spy","phx_reply",{"status":"ok","response":{"leaked":"nil","leaked_too":"nil","leaked_raw":"nil","upper":"A","unknown":"nil"}}]`)
		}
	})
	t.Run("sandbox", func(t *testing.T) {
		c := s.dial(t, "vsn=2.0.0")
		c.join("spy", "1", `{}`, `{}`)
		c.send(`["1","2","spy","sandbox",{}]`)
		c.expect(`["1","2","spy","phx_reply",{"status":"ok","response":{
			"os":"nil","io":"nil","debug":"nil","coroutine":"nil","package":"nil","load":"nil",
			"loadstring":"nil","dofile":"nil","loadfile":"nil","getfenv":"nil","setfenv":"nil",
			"collectgarbage":"nil","_printregs":"nil","module":"nil","newproxy":"nil",
			"string.dump":"nil","require os":false,"require escape":false}}]`)
	})

	for i, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			c := clients[i]
			c.tb = t
			for _, w := range b.want(b.topic) {
				c.expect(w)
			}
			if took := time.Since(start); took > bombTime {
				t.Errorf("answered %v after the bombs went off, want under %v", took, bombTime)
			}
			// the next join on the topic works (where the channel lives on, this is the
			// duplicate join of SPEC section 2, which closes the first)
			c.send(fmt.Sprintf(`["3","3",%q,"phx_join",{}]`, b.topic))
			c.expect(fmt.Sprintf(`["3","3",%q,"phx_reply",{"status":"ok","response":{}}]`, b.topic))
			if b.errMsg == "" {
				c.expect(fmt.Sprintf(`["1","1",%q,"phx_close",{}]`, b.topic))
			}
			c.send(fmt.Sprintf(`["3","4",%q,"ping",{}]`, b.topic))
			c.expect(fmt.Sprintf(`["3","4",%q,"phx_reply",{"status":"ok","response":{"pong":true}}]`, b.topic))

			if b.errMsg == "" {
				c.heartbeat("5")
				if lines := errorLines(s.log, b.topic); len(lines) != 0 {
					t.Fatalf("a defused bomb logged:\n%s", strings.Join(lines, "\n"))
				}
				return
			}
			callback, file, line := b.callback, b.file, b.line
			if callback == "" {
				callback = "handle_in"
			}
			if file == "" {
				file = "hostile.lua"
			}
			if line == 0 {
				line = luaLine(t, hostileLua, "bombs."+b.name+" = ")
			}
			want := []string{"script error", "callback=" + callback, fmt.Sprintf("%s:%d:", file, line)}
			expectOneErrorLine(t, s.log, b.topic, want...)
			if line := errorLines(s.log, b.topic)[0]; !strings.Contains(line, b.errMsg) &&
				(b.errAlt == "" || !strings.Contains(line, b.errAlt)) {
				t.Fatalf("the error line does not say %q:\n%s", b.errMsg, line)
			}
		})
	}

	close(stop)
	got := <-load
	heapPeak := mem.peak()
	hwm, err := s.peakRSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("healthy: %d echoes answered of %d, slowest %v; server heap %d MiB before, peak %d MiB; peak RSS %d MiB",
		got.answered, got.sent, got.slowest, heapBefore>>20, heapPeak>>20, hwm>>20)
	if got.err != nil || got.answered != got.sent || got.sent < 3 {
		t.Errorf("the healthy client was not served throughout: %d of %d echoes answered (%v)", got.answered, got.sent, got.err)
	}
	if mem.errs.Load() > 0 || heapPeak == 0 {
		t.Errorf("%d heap samples failed", mem.errs.Load())
	}
	if heapPeak > maxHeapGrowth {
		t.Errorf("the server's heap reached %d MiB, want under %d MiB", heapPeak>>20, maxHeapGrowth>>20)
	}
	// the kernel's exact peak; the race runtime's shadow memory would count in it too
	if !raceEnabled && hwm > maxHeapGrowth {
		t.Errorf("the server's resident set reached %d MiB, want under %d MiB", hwm>>20, maxHeapGrowth>>20)
	}
	// the healthy channel is still there
	healthy.send(`["1","9","healthy","echo",{"after":true}]`)
	healthy.expect(`["1","9","healthy","phx_reply",{"status":"ok","response":{"after":true}}]`)
}

// TestHeapWatchdog keeps 8 MB per step from a script with a budget too long to stop it: the
// heap watchdog must, at its bound (three quarters of GOMEMLIMIT), before the heap reaches
// the limit; and the server keeps serving the healthy clients pushing meanwhile.
func TestHeapWatchdog(t *testing.T) {
	t.Parallel()
	const healthyClients = 4
	s := startServerEnv(t, []string{"GOMEMLIMIT=" + strconv.Itoa(memLimit)},
		writeScripts(t, map[string]string{"hostile.lua": hostileLua, "healthy.lua": healthyLua}),
		"-script-timeout", "20s")
	mem := watchMemory(s)
	defer mem.peak()

	stop := make(chan struct{})
	loads := make(chan echoLoad, healthyClients)
	for range healthyClients {
		c := s.dial(t, "vsn=2.0.0")
		c.join("healthy", "1", `{}`, `{}`)
		go func() { loads <- pushEchoes(c.conn, "healthy", "1", healthyInterval, stop) }()
	}

	const topic = "bomb:heap"
	c := s.dial(t, "vsn=2.0.0")
	c.join(topic, "1", `{}`, `{}`)
	start := time.Now()
	c.send(`["1","2","bomb:heap","go",{}]`)
	// Growing the heap to the bound takes the bomb ~3 s under -race alone, more in
	// the full suite; still far inside the 20 s budget, which must not be what stops it
	// (the log line below says which did).
	c.expectWithin(`["1","1","bomb:heap","phx_error",{"reason":"channel_crash"}]`, 15*time.Second)
	stopped := time.Since(start)
	expectOneErrorLine(t, s.log, topic, "script error", "callback=handle_in",
		fmt.Sprintf("hostile.lua:%d:", luaLine(t, hostileLua, "bombs.heap = ")),
		fmt.Sprintf("the process heap passed its bound of %d MiB", memLimit/4*3>>20))

	// The Phoenix JS client rejoins a crashed channel after a second; this one tries at
	// once and again until a second has passed: the join must work within that delay.
	var tries int
	err := poll(time.Second, func() error {
		tries++
		ref := strconv.Itoa(10 + tries)
		c.send(fmt.Sprintf(`[%q,%q,"bomb:heap","phx_join",{}]`, ref, ref))
		f := c.readArray()
		if f[0] != ref || fmt.Sprint(f[4]) != "map[response:map[] status:ok]" {
			return fmt.Errorf("join %d answered %v", tries, f)
		}
		return nil
	})
	if err != nil {
		t.Errorf("the next join on %s did not work: %v", topic, err)
	}

	close(stop)
	heapPeak := mem.peak()
	hwm, err := s.peakRSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the bomb was stopped after %v; rejoined at try %d; server heap peak %d MiB, RSS peak %d MiB",
		stopped, tries, heapPeak>>20, hwm>>20)
	if heapPeak > memLimit {
		t.Errorf("the server's heap reached %d MiB, over GOMEMLIMIT (%d MiB)", heapPeak>>20, memLimit>>20)
	}
	if !raceEnabled && hwm > memLimit {
		t.Errorf("the server's resident set reached %d MiB, over GOMEMLIMIT (%d MiB)", hwm>>20, memLimit>>20)
	}
	for range healthyClients {
		got := <-loads
		if got.err != nil || got.answered != got.sent || got.sent == 0 {
			t.Errorf("a healthy client was not served throughout: %d of %d echoes answered (%v)", got.answered, got.sent, got.err)
		}
	}
	if n := s.log.count("script error", "topic=healthy "); n != 0 {
		t.Errorf("%d script errors on the healthy topic:\n%s", n, strings.Join(errorLines(s.log, "healthy"), "\n"))
	}
}

// TestSlowConsumer floods 100 reading clients and one that has stopped reading: the slow one
// is closed once its outbound queue (-max-queue) is full, and every other client receives
// every broadcast, in order.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	const (
		fast     = 100
		n        = 100      // broadcasts
		padding  = 64 << 10 // bytes of each: n of them are far more than the slow client's queue and socket buffers
		window   = 2        // broadcasts the slowest fast client may lag behind: half its queue
		maxQueue = 256 << 10
	)
	s := startServer(t, testScripts(t), "-api-key", apiKey, "-max-queue", strconv.Itoa(maxQueue))

	// The slow client asks for a small receive buffer before it connects, so the kernel does
	// not absorb what it never reads.
	slow := dialSmallBuffer(t, s)
	slow.join("test:flood", "1", `{}`, `{"joined":"test:flood"}`)

	counts := make([]atomic.Int64, fast)
	done := make(chan error, fast)
	for i := range fast {
		c := s.dial(t, "vsn=2.0.0")
		c.join("test:flood", "1", `{}`, `{"joined":"test:flood"}`)
		go func() { done <- readFlood(c.conn, n, &counts[i]) }()
	}
	slowest := func() int64 {
		low := int64(n)
		for i := range counts {
			low = min(low, counts[i].Load())
		}
		return low
	}

	// The slow client starts reading again the moment the server gives up on it, as a
	// client whose network stalled for a while does: what the server sent it last, a close
	// frame, can then reach it.
	type drained struct {
		frames int
		res    closeResult
	}
	slowEnd := make(chan drained, 1)
	go func() {
		_ = poll(30*time.Second, func() error {
			if s.log.count("slow consumer closed") == 0 {
				return errors.New("not yet")
			}
			return nil
		})
		n, res := drainFlood(slow.conn)
		slowEnd <- drained{n, res}
	}()

	pad := strings.Repeat("x", padding)
	start := time.Now()
	for k := range n {
		if k >= window {
			err := poll(readTimeout, func() error {
				if low := slowest(); low < int64(k-window) {
					return fmt.Errorf("fast clients at %d of %d broadcasts", low, k)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		body := fmt.Sprintf(`{"topic":"test:flood","event":"m","payload":{"i":%d,"pad":%q}}`, k, pad)
		if code := s.post(t, "/api/broadcast", apiKey, body); code != http.StatusAccepted {
			t.Fatalf("POST /api/broadcast %d: HTTP %d", k, code)
		}
	}
	for range fast {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("fast clients still reading 10 s after the flood; the slowest is at %d of %d", slowest(), n)
		}
	}
	t.Logf("%d broadcasts of %d KiB reached %d clients in %v", n, padding>>10, fast, time.Since(start))

	// the slow one was closed, once, as a slow consumer; no fast one was
	s.log.waitFor(t, readTimeout, "level=WARN", "slow consumer closed")
	if got := s.log.count("slow consumer closed"); got != 1 {
		t.Errorf("%d slow consumer lines, want 1:\n%s", got, s.log)
	}
	s.expectMetric(t, `luachan_connections_closed_total{reason="slow"}`, 1)
	// it got what the kernel held for it, whole frames, and then the close frame
	end := <-slowEnd
	t.Logf("the slow client read %d of %d broadcasts, then %+v", end.frames, n, end.res)
	if end.frames >= n {
		t.Errorf("the slow client received all %d broadcasts: it was never cut off", n)
	}
	if end.res.err != nil || end.res.code != websocket.ClosePolicyViolation {
		t.Errorf("the slow client's connection ended with %+v, want close code 1008", end.res)
	}
}

// dialSmallBuffer connects with a 4 KiB receive buffer, set before the handshake.
func dialSmallBuffer(tb testing.TB, s *server) *wsClient {
	tb.Helper()
	nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	d := websocket.Dialer{HandshakeTimeout: readTimeout, NetDialContext: nd.DialContext}
	conn, resp, err := d.Dial(s.wsURL("vsn=2.0.0"), nil)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &wsClient{tb: tb, conn: conn, resp: resp}
}

// readFlood reads n broadcasts of the flood in order, counting them in count.
func readFlood(conn *websocket.Conn, n int, count *atomic.Int64) error {
	for k := range n {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("broadcast %d: %w", k, err)
		}
		if want := fmt.Sprintf(`[null,null,"test:flood","m",{"i":%d,`, k); !strings.HasPrefix(string(data), want) {
			return fmt.Errorf("got %.60s, want %s...", data, want)
		}
		count.Add(1)
	}
	return nil
}

// drainFlood reads until the connection ends, counting the frames before.
func drainFlood(conn *websocket.Conn) (int, closeResult) {
	n := 0
	_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			n++
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return n, closeResult{code: ce.Code, reason: ce.Text}
		}
		return n, closeResult{err: err}
	}
}

// hangLua's leave never returns (within any budget it is given).
const hangLua = `return { topic = "hang:*", join = function() return true end,
  leave = function(reason, socket)
    luachan.log("info", "leave hangs", { hang_topic = socket.topic, hang_reason = reason })
    while true do end
  end }
`

// shutdownWithin is the SPEC's bound on SIGTERM to exit.
const shutdownWithin = 10 * time.Second

// TestShutdownHangingLeave: SIGTERM with joined clients, one channel's leave looping for
// ever under a budget longer than the drain: every socket is closed with 1012, new
// connections are refused, every other leave runs with "shutdown", and the process exits 0
// within 10 s.
func TestShutdownHangingLeave(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		budget string
	}{
		{"leave outlives the drain", "60s"},
		{"leave over its budget", "250ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, writeScripts(t, map[string]string{"test.lua": testLua, "hang.lua": hangLua}),
				"-script-timeout", tc.budget)
			const clients = 5
			var closed []<-chan closeResult
			for i := range clients {
				c := s.dial(t, "vsn=2.0.0")
				topic := fmt.Sprintf("test:s%d", i)
				c.join(topic, "1", `{}`, fmt.Sprintf(`{"joined":%q}`, topic))
				if i < 2 {
					c.join(fmt.Sprintf("hang:%d", i), "2", `{}`, `{}`)
				}
				closed = append(closed, c.closeAsync())
			}

			start := time.Now()
			exited := make(chan time.Duration, 1)
			s.stopOnce.Do(func() { // the test's own stop: it times the exit
				if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				go func() {
					<-s.done
					exited <- time.Since(start)
				}()
			})
			for i, ch := range closed {
				if r := <-ch; r.err != nil || r.code != websocket.CloseServiceRestart {
					t.Errorf("client %d: socket ended with %+v, want close code 1012", i, r)
				}
			}
			// no new socket while draining (the process may also be gone already)
			if c, err := s.dialHeader(t, "vsn=2.0.0", nil); err == nil {
				c.conn.Close()
				t.Errorf("a new WebSocket was accepted after SIGTERM")
			}

			var took time.Duration
			select {
			case took = <-exited:
			case <-time.After(shutdownWithin + 5*time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
				t.Fatalf("luachan still running %v after SIGTERM", shutdownWithin+5*time.Second)
			}
			t.Logf("exited %v after SIGTERM", took)
			if s.err != nil {
				t.Errorf("luachan exited with %v, want status 0", s.err)
			}
			if took > shutdownWithin {
				t.Errorf("luachan took %v to exit after SIGTERM, want at most %v", took, shutdownWithin)
			}
			for i := range clients {
				if n := s.log.count("test channel left", fmt.Sprintf("left_topic=test:s%d ", i), "left_reason=shutdown"); n != 1 {
					t.Errorf("test:s%d: %d log lines of leave(\"shutdown\"), want 1", i, n)
				}
			}
			for i := range 2 {
				if n := s.log.count("leave hangs", fmt.Sprintf("hang_topic=hang:%d ", i), "hang_reason=shutdown"); n != 1 {
					t.Errorf("hang:%d: %d log lines of its leave(\"shutdown\") starting, want 1", i, n)
				}
			}
			if tc.budget == "250ms" {
				// each hanging leave is one error line, with file and line
				for i := range 2 {
					if lines := errorLines(s.log, fmt.Sprintf("hang:%d", i)); len(lines) != 1 ||
						!containsAll(lines[0], []string{"callback=leave", fmt.Sprintf("hang.lua:%d:", luaLine(t, hangLua, "while true do end")), "ran out of time"}) {
						t.Errorf("hang:%d: want one error line naming hang.lua and its line, got:\n%s", i, strings.Join(lines, "\n"))
					}
				}
			}
		})
	}
}

// limitsLua echoes, and spins for payload.ms milliseconds on "spin".
const limitsLua = `return { topic = "limits:*", join = function() return true end,
  handle_in = function(event, payload)
    if event == "spin" then
      local stop = luachan.now() + payload.ms
      while luachan.now() < stop do end
      return "ok", { spun = payload.ms }
    end
    return "ok", payload
  end }
`

// echoFrame returns a client echo on limits:x whose text is exactly size bytes, and the
// reply it gets.
func echoFrame(tb testing.TB, size int) (frame, reply string) {
	tb.Helper()
	const head, tail = `["1","2","limits:x","echo",{"x":"`, `"}]`
	if size < len(head)+len(tail) {
		tb.Fatalf("a frame of %d bytes is too short", size)
	}
	x := strings.Repeat("a", size-len(head)-len(tail))
	return head + x + tail, `["1","2","limits:x","phx_reply",{"status":"ok","response":{"x":"` + x + `"}}]`
}

// TestLimitFlags hits every per-connection and per-callback limit `luachan -h` lists,
// each set by its flag to a small value, from a client.
func TestLimitFlags(t *testing.T) {
	t.Parallel()
	scripts := writeScripts(t, map[string]string{"limits.lua": limitsLua})

	t.Run("-max-frame-size", func(t *testing.T) {
		t.Parallel()
		const limit = 2048
		s := startServer(t, scripts, "-max-frame-size", strconv.Itoa(limit))
		c := s.dial(t, "vsn=2.0.0")
		c.join("limits:x", "1", `{}`, `{}`)
		at, reply := echoFrame(t, limit)
		c.send(at)
		c.expect(reply)
		over, _ := echoFrame(t, limit+1)
		c.send(over)
		if reason := c.expectClose(websocket.CloseMessageTooBig); reason == "" {
			t.Errorf("closed with 1009 and no reason")
		}
		s.log.waitFor(t, readTimeout, "level=WARN", "frame too big")
	})

	t.Run("-max-channels", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, scripts, "-max-channels", "3")
		c := s.dial(t, "vsn=2.0.0")
		for i := 1; i <= 3; i++ {
			c.join(fmt.Sprintf("limits:c%d", i), fmt.Sprint(i), `{}`, `{}`)
		}
		c.send(`["4","4","limits:c4","phx_join",{}]`)
		c.expect(`["4","4","limits:c4","phx_reply",{"status":"error","response":{"reason":"too many channels joined"}}]`)
		c.send(`["1","5","limits:c1","phx_leave",{}]`)
		c.expect(`["1","5","limits:c1","phx_reply",{"status":"ok","response":{}}]`)
		c.expect(`["1","1","limits:c1","phx_close",{}]`)
		c.join("limits:c4", "6", `{}`, `{}`)
		// the limit is per socket
		other := s.dial(t, "vsn=2.0.0")
		for i := 1; i <= 3; i++ {
			other.join(fmt.Sprintf("limits:c%d", i), fmt.Sprint(i), `{}`, `{}`)
		}
	})

	t.Run("LUACHAN_MAX_CHANNELS", func(t *testing.T) {
		t.Parallel()
		s := startServerEnv(t, []string{"LUACHAN_MAX_CHANNELS=1"}, scripts)
		c := s.dial(t, "vsn=2.0.0")
		c.join("limits:c1", "1", `{}`, `{}`)
		c.send(`["2","2","limits:c2","phx_join",{}]`)
		c.expect(`["2","2","limits:c2","phx_reply",{"status":"error","response":{"reason":"too many channels joined"}}]`)
	})

	t.Run("-max-rate and -max-burst", func(t *testing.T) {
		t.Parallel()
		const rate, burst = 20, 10
		s := startServer(t, scripts, "-max-rate", strconv.Itoa(rate), "-max-burst", strconv.Itoa(burst))
		// a burst up to -max-burst, then a pace under -max-rate, is fine
		calm := s.dial(t, "vsn=2.0.0")
		for i := range burst {
			calm.send(fmt.Sprintf(`[null,"%d","phoenix","heartbeat",{}]`, i))
		}
		for i := range burst {
			calm.expect(fmt.Sprintf(`[null,"%d","phoenix","phx_reply",{"status":"ok","response":{}}]`, i))
		}
		tick := time.NewTicker(time.Second / (rate / 2))
		defer tick.Stop()
		for i := range rate {
			<-tick.C
			calm.heartbeat(fmt.Sprint(100 + i))
		}
		// far over it: closed with 1008 and a reason
		flood := s.dial(t, "vsn=2.0.0")
		for i := range 5 * burst {
			flood.send(fmt.Sprintf(`[null,"%d","phoenix","heartbeat",{}]`, i))
		}
		if reason := flood.expectClose(websocket.ClosePolicyViolation); !strings.Contains(reason, "rate") {
			t.Errorf("closed with 1008 (%q), want a reason naming the rate limit", reason)
		}
		calm.heartbeat("done")
		s.expectMetric(t, `luachan_connections_closed_total{reason="rate_limit"}`, 1)
	})

	t.Run("-idle-timeout", func(t *testing.T) {
		t.Parallel()
		const idle = 500 * time.Millisecond
		s := startServer(t, scripts, "-idle-timeout", idle.String())
		start := time.Now()
		quiet := s.dial(t, "vsn=2.0.0")
		ended := quiet.closeAsync()
		chatty := s.dial(t, "vsn=2.0.0")
		tick := time.NewTicker(idle / 4)
		defer tick.Stop()
		for i := range 12 { // three idle periods
			<-tick.C
			chatty.heartbeat(fmt.Sprint(i))
		}
		r := <-ended
		took := time.Since(start)
		if r.err != nil || r.code != websocket.CloseGoingAway || r.reason == "" {
			t.Errorf("the idle socket ended with %+v, want close code 1001 and a reason", r)
		}
		if took < idle*9/10 {
			t.Errorf("the idle socket was closed after %v, before its %v", took, idle)
		}
	})

	t.Run("-script-timeout", func(t *testing.T) {
		t.Parallel()
		const budget = time.Second
		s := startServer(t, scripts, "-script-timeout", budget.String())
		c := s.dial(t, "vsn=2.0.0")
		c.join("limits:x", "1", `{}`, `{}`)
		// longer than the default budget, within this one
		c.send(`["1","2","limits:x","spin",{"ms":400}]`)
		c.expect(`["1","2","limits:x","phx_reply",{"status":"ok","response":{"spun":400}}]`)
		start := time.Now()
		c.send(`["1","3","limits:x","spin",{"ms":60000}]`)
		c.expect(`["1","1","limits:x","phx_error",{"reason":"channel_crash"}]`)
		if took := time.Since(start); took < budget*9/10 || took > budget+bombTime {
			t.Errorf("the runaway callback was stopped after %v, want about %v", took, budget)
		}
		s.log.waitFor(t, readTimeout, "script error", "topic=limits:x ", "limits.lua:5:", "ran out of time (CPU budget 1s)")
	})

	t.Run("-origins", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, scripts, "-origins", "https://good.example, https://also.example")
		for _, tc := range []struct {
			origin string
			want   int
		}{
			{"https://evil.example", http.StatusForbidden},
			{"https://good.example.evil.example", http.StatusForbidden},
			{"https://good.example", http.StatusSwitchingProtocols},
			{"https://also.example", http.StatusSwitchingProtocols},
			{"", http.StatusSwitchingProtocols}, // not a browser: no Origin to check
		} {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			c, err := s.dialHeader(t, "vsn=2.0.0", h)
			got := handshakeStatus(err)
			if err == nil {
				got = c.resp.StatusCode
				c.heartbeat("1")
			}
			if got != tc.want {
				t.Errorf("Origin %q: HTTP %d (%v), want %d", tc.origin, got, err, tc.want)
			}
		}
	})
}
