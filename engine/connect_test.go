package engine

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/luachan/luachan/hub"
)

// holdLua's connect, given ?hold=1, waits in luachan.store.get until the test
// lets it go, keeping its VM; without it, it accepts at once.
const holdLua = `return {
  connect = function(params, info)
    if params.hold then luachan.store.get("gate") end
    return true
  end,
}`

// gateStore is a luabind.Store whose Get waits until open is closed, telling
// entered each time one starts waiting.
type gateStore struct {
	entered chan struct{}
	open    chan struct{}
}

func (s *gateStore) Get(string) ([]byte, bool, error) {
	s.entered <- struct{}{}
	<-s.open
	return nil, false, nil
}
func (s *gateStore) Set(string, []byte) error                                { return nil }
func (s *gateStore) SetTTL(string, []byte, time.Duration) error              { return nil }
func (s *gateStore) CAS(string, []byte, []byte, time.Duration) (bool, error) { return false, nil }
func (s *gateStore) TTL(string) (time.Duration, bool, error)                 { return 0, false, nil }
func (s *gateStore) Incr(string, int64) (int64, error)                       { return 0, nil }
func (s *gateStore) Del(string) error                                        { return nil }

// connectSpy is the engine as the hub's Handler, reporting when each Connect
// starts and what it answered.
type connectSpy struct {
	*Engine
	started  chan struct{}
	answered chan bool
}

func (s *connectSpy) Connect(r *hub.ConnectRequest) (bool, string, any) {
	s.started <- struct{}{}
	ok, id, state := s.Engine.Connect(r)
	s.answered <- ok
	return ok, id, state
}

// TestConnectGivesUpWhenClientLeaves: a connect waiting for a VM of socket.lua,
// every one of them busy, returns (refused) as soon as its HTTP client hangs
// up, rather than when a VM frees up.
func TestConnectGivesUpWhenClientLeaves(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "socket.lua"), []byte(holdLua), 0o644); err != nil {
		t.Fatal(err)
	}
	vms := max(4*runtime.GOMAXPROCS(0), 8) // luabind's default VMs per script
	gate := &gateStore{entered: make(chan struct{}, vms), open: make(chan struct{})}
	spy := &connectSpy{started: make(chan struct{}, vms+1), answered: make(chan bool, vms+1)}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := hub.New(hub.Config{Handler: spy, Logger: logger})
	eng, err := New(Config{Dir: dir, Hub: h, Logger: logger, Store: gate})
	if err != nil {
		t.Fatal(err)
	}
	spy.Engine = eng
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	var holders sync.WaitGroup
	t.Cleanup(func() {
		select {
		case <-gate.open:
		default:
			close(gate.open)
		}
		holders.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), rigTimeout)
		defer cancel()
		_ = h.Close(ctx)
		_ = eng.Close(ctx)
		srv.Close()
	})
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/socket/websocket?vsn=2.0.0"

	// Every VM of socket.lua waits in the store.
	for range vms {
		holders.Add(1)
		go func() {
			defer holders.Done()
			conn, _, err := websocket.DefaultDialer.Dial(url+"&hold=1", nil)
			if err == nil {
				conn.Close()
			}
		}()
	}
	for i := range vms {
		select {
		case <-gate.entered:
		case <-time.After(rigTimeout):
			t.Fatalf("only %d of %d connects hold a VM", i, vms)
		}
	}
	for range vms {
		<-spy.started
	}

	// One more connect waits for a VM; its client hangs up.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: luachan\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	select {
	case <-spy.started:
	case <-time.After(rigTimeout):
		t.Fatal("the last connect never reached the engine")
	}
	conn.Close()
	select {
	case ok := <-spy.answered:
		if ok {
			t.Fatal("the waiting connect was accepted: it got a VM, so the pool was not full")
		}
	case <-time.After(rigTimeout):
		t.Fatal("the connect still waits for a VM after its client left")
	}
	select {
	case <-gate.open:
		t.Fatal("gate opened early")
	default:
	}
}

// TestScriptsListsEachErrorOnItsOwnFile: with socket.lua broken (its previous version
// serving) and other files broken beside it, every entry of Scripts has its own error, in any
// order the broken files are met.
func TestScriptsListsEachErrorOnItsOwnFile(t *testing.T) {
	r := startRig(t, map[string]string{
		"socket.lua": `return { connect = function() return true end }`,
		"a.lua":      `return { topic = "a:*", join = function() return true end }`,
	})
	r.writeScript(t, "socket.lua", "return {")
	for _, name := range []string{"b.lua", "c.lua", "d.lua", "e.lua"} {
		r.writeScript(t, name, "return { topic = ")
	}
	r.reload(t)
	for range 20 { // the broken files are kept in a map: each listing meets them in another order
		for _, si := range r.eng.Scripts() {
			if si.File == "a.lua" {
				if si.Error != "" {
					t.Fatalf("a.lua lists an error: %q", si.Error)
				}
				continue
			}
			if !strings.HasPrefix(si.Error, si.File+":") {
				t.Fatalf("%s lists the error %q, want its own", si.File, si.Error)
			}
		}
	}
}
