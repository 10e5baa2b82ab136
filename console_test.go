package luachan_test

// The dev console (SPEC section 9) in a real headless Chromium: Debian's chromium
// package, driven with chromedp. Without it these tests fail, naming the package.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "TestConsoleScreenshot: write docs/console.png")

const (
	// pageTimeout bounds one browser test, start of Chromium included.
	pageTimeout = 90 * time.Second
	// liveWithin is how soon a change must show on the page (SPEC section 9: a broken
	// save within 2 s).
	liveWithin = 2 * time.Second
)

// browser is one headless Chromium with a tab, recording what the page logs and asks for.
type browser struct {
	ctx context.Context

	mu       sync.Mutex // guards the fields below
	errs     []string   // console errors, exceptions and error log entries
	requests []string   // every URL the page requested, WebSockets included
}

// newBrowser starts Debian's chromium headless with a fresh profile. Chromium's own
// background traffic (updates, sync, QUIC probes) is turned off: this machine's network
// is closed, and the page must reach no other host anyway.
func newBrowser(tb testing.TB) *browser {
	tb.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		tb.Fatalf("the console tests need Debian's chromium package (apt-get install -y chromium): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, pageTimeout)
	tb.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })

	b := &browser{ctx: ctx}
	err = chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == "error" || ev.Type == "assert" {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.errs = append(b.errs, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			b.errs = append(b.errs, "exception: "+desc)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				b.errs = append(b.errs, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			b.requests = append(b.requests, ev.Request.URL)
		case *network.EventWebSocketCreated:
			b.requests = append(b.requests, ev.URL)
		}
	})
	if err == nil {
		_, err = chromedp.Call(ctx, network.Enable, network.EnableParams{})
	}
	if err == nil {
		_, err = chromedp.Call(ctx, cdplog.Enable, cdp.Empty{})
	}
	if err == nil {
		_, err = chromedp.Call(ctx, runtime.Enable, cdp.Empty{})
	}
	if err != nil {
		tb.Fatalf("starting chromium (%s): %v", path, err)
	}
	return b
}

// run runs actions in the tab, failing the test on error.
func (b *browser) run(tb testing.TB, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// waitJS polls the JavaScript expression js until it is true, or fails after timeout.
func (b *browser) waitJS(tb testing.TB, timeout time.Duration, what, js string) {
	tb.Helper()
	err := poll(timeout, func() error {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		tb.Fatalf("%s: %v\npage text:\n%s", what, err, text)
	}
}

// text returns the text of the first element matching selector.
func (b *browser) text(tb testing.TB, selector string) string {
	tb.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		tb.Fatalf("text of %s: %v", selector, err)
	}
	return s
}

// checkClean fails the test if the page logged an error or asked any host but host.
func (b *browser) checkClean(tb testing.TB, host string) {
	tb.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		tb.Errorf("the page logged errors:\n%s", strings.Join(b.errs, "\n"))
	}
	if len(b.requests) == 0 {
		tb.Errorf("no requests recorded: network events not seen")
	}
	for _, r := range b.requests {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "data" && u.Host != host) {
			tb.Errorf("the page requested %s: not this server (%s)", r, host)
		}
	}
}

// jsString quotes s for a JavaScript expression.
func jsString(s string) string { return fmt.Sprintf("%q", s) }

// rowJS is an expression for the scripts table row of file.
func rowJS(file string) string {
	return `document.querySelector('#scripts tr[data-file=` + jsString(file) + `]')`
}

func TestConsolePage(t *testing.T) {
	dir := examplesPlus(t, nil)
	s := startServer(t, dir, "-console")
	b := newBrowser(t)
	b.run(t, "open the console", chromedp.Navigate(s.url("/console")))

	t.Run("scripts", func(t *testing.T) {
		for file, pattern := range map[string]string{
			"rooms.lua": "rooms:*", "lobby.lua": "rooms:lobby", "presence.lua": "presence:*", "superadmin.lua": "rooms:superadmin",
		} {
			b.waitJS(t, 10*time.Second, file+" listed with "+pattern,
				`(() => { const r = `+rowJS(file)+`; return !!r && r.dataset.state === 'loaded' && r.cells[1].textContent === `+jsString(pattern)+` })()`)
		}
	})

	t.Run("broken save shows its line, then clears", func(t *testing.T) {
		path := filepath.Join(dir, "rooms.lua")
		good, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		broken := string(good) + "\nfunction oops(\n" // a syntax error at the end of the file
		if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
			t.Fatal(err)
		}
		b.waitJS(t, liveWithin+500*time.Millisecond, "rooms.lua shown failed", rowJS("rooms.lua")+`.dataset.state === 'failed'`)
		msg := b.text(t, `#scripts tr[data-file="rooms.lua"] .err`)
		if !regexp.MustCompile(`rooms\.lua:\d+`).MatchString(msg) {
			t.Errorf("the error shown is %q, want the file and line", msg)
		}
		if err := os.WriteFile(path, good, 0o644); err != nil {
			t.Fatal(err)
		}
		b.waitJS(t, liveWithin+500*time.Millisecond, "rooms.lua shown loaded again", rowJS("rooms.lua")+`.dataset.state === 'loaded'`)
	})

	t.Run("topic with subscribers and presence", func(t *testing.T) {
		alice := s.dial(t, "vsn=2.0.0")
		alice.send(`["1","1","presence:lobby","phx_join",{"user":"alice"}]`)
		b.waitJS(t, 5*time.Second, "presence:lobby listed with 1 subscriber",
			`(() => { const r = document.querySelector('#topics tr[data-topic="presence:lobby"]'); return !!r && r.cells[1].textContent === '1' })()`)
		b.run(t, "open presence:lobby", chromedp.Click(chromedp.CSS(`#topics tr[data-topic="presence:lobby"]`)))
		b.waitJS(t, 5*time.Second, "presence:lobby opened with alice present",
			`document.querySelector('#topic-name').textContent === 'presence:lobby' && document.querySelector('#topic-subs').textContent === '1' && !!document.querySelector('#presence li[data-key="alice"]')`)
		alice.send(`["1","2","presence:lobby","status",{"status":"away"}]`)
		b.waitJS(t, 5*time.Second, "the presence_diff broadcast listed",
			`[...document.querySelectorAll('#events li')].some(li => li.textContent.includes('presence_diff') && li.textContent.includes('away'))`)
	})

	t.Run("playground joins rooms:lobby and sees its own new:msg", func(t *testing.T) {
		b.run(t, "connect and join",
			chromedp.Click(chromedp.CSS(`#pg-connect`)),
		)
		b.waitJS(t, 5*time.Second, "playground connected", `document.querySelector('#pg-state').textContent === 'open'`)
		b.run(t, "join rooms:lobby",
			chromedp.SetValue(chromedp.CSS(`#pg-topic`), "rooms:lobby"),
			chromedp.SetValue(chromedp.CSS(`#pg-join-payload`), `{"user": "pat"}`),
			chromedp.Click(chromedp.CSS(`#pg-join`)),
		)
		b.waitJS(t, 5*time.Second, "rooms:lobby joined", `document.querySelector('.channel[data-topic="rooms:lobby"] .state').textContent === 'joined'`)
		b.run(t, "push new:msg",
			chromedp.SetValue(chromedp.CSS(`.channel[data-topic="rooms:lobby"] .pg-payload`), `{"uid": "pat", "body": "hello from the playground"}`),
			chromedp.Click(chromedp.CSS(`.channel[data-topic="rooms:lobby"] .pg-push`)),
		)
		b.waitJS(t, 5*time.Second, "its own new:msg received",
			`[...document.querySelectorAll('#pg-log li[data-dir="in"]')].some(li => li.textContent.includes('"new:msg"') && li.textContent.includes('hello from the playground'))`)
		b.waitJS(t, 5*time.Second, "the push sent shown",
			`[...document.querySelectorAll('#pg-log li[data-dir="out"]')].some(li => li.textContent.includes('"new:msg"'))`)
	})

	b.checkClean(t, s.addr)
}

// TestConsoleOffLoopback: off loopback the console needs the API key, and says so at
// start if there is none.
func TestConsoleOffLoopback(t *testing.T) {
	t.Run("no key: exit 2 with one line", func(t *testing.T) {
		cmd := exec.Command(binPath, "-console", "-addr", "0.0.0.0:0", "-scripts", examplesDir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Fatalf("exit %v, want status 2; stderr: %s", err, stderr.String())
		}
		out := strings.TrimRight(stderr.String(), "\n")
		if strings.Count(out, "\n") != 0 || !strings.Contains(out, "-api-key") || !strings.Contains(out, "-console") {
			t.Fatalf("stderr %q, want one line naming -console and -api-key", out)
		}
	})

	t.Run("with a key: the API needs the bearer", func(t *testing.T) {
		const secret = "jwt-secret-not-to-show"
		s := startServer(t, examplesPlus(t, nil), "-console", "-addr", "0.0.0.0:0", "-api-key", apiKey, "-secret", secret)
		get := func(path, key string) (int, string) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, s.url(path), nil)
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			defer resp.Body.Close()
			var body strings.Builder
			_, _ = io.Copy(&body, resp.Body)
			return resp.StatusCode, body.String()
		}
		if code, _ := get("/console/api/snapshot", ""); code != http.StatusUnauthorized {
			t.Errorf("snapshot without the key: %d, want 401", code)
		}
		if code, _ := get("/console/api/stream", "wrong"); code != http.StatusUnauthorized {
			t.Errorf("stream with a wrong key: %d, want 401", code)
		}
		code, body := get("/console/api/snapshot?topic=rooms:lobby", apiKey)
		if code != http.StatusOK || !strings.Contains(body, `"rooms.lua"`) {
			t.Errorf("snapshot with the key: %d %s", code, body)
		}
		if strings.Contains(body, apiKey) || strings.Contains(body, secret) {
			t.Errorf("the snapshot shows a secret: %s", body)
		}
		if code, body := get("/console/", ""); code != http.StatusOK || !strings.Contains(body, "API key") {
			t.Errorf("the page itself: %d, want 200 and the key form", code)
		}
	})

	t.Run("loopback: no key, but only for a loopback host name", func(t *testing.T) {
		s := startServer(t, examplesDir, "-console")
		req, _ := http.NewRequest(http.MethodGet, s.url("/console/api/snapshot"), nil)
		req.Host = "rebound.example:80"
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("Host %s: %d, want 403 (DNS rebinding)", req.Host, resp.StatusCode)
		}
	})
}

// TestConsoleScreenshot writes docs/console.png, the README's picture of the console:
//
//	go test -run TestConsoleScreenshot -update-screenshot .
func TestConsoleScreenshot(t *testing.T) {
	if !*updateScreenshot {
		t.Skip("pass -update-screenshot to write docs/console.png")
	}
	s := startServer(t, examplesDir, "-console")
	var users []*wsClient
	for i, name := range []string{"alice", "bob", "carol"} {
		c := s.dial(t, "vsn=2.0.0")
		c.send(fmt.Sprintf(`["1","1","presence:lobby","phx_join",{"user":%q}]`, name))
		c.send(fmt.Sprintf(`["2","2","rooms:lobby","phx_join",{"user":%q}]`, name))
		if i == 0 {
			c.send(`["3","3","rooms:42","phx_join",{"user":"alice"}]`)
		}
		users = append(users, c)
	}
	b := newBrowser(t)
	b.run(t, "open the console", chromedp.Navigate(s.url("/console/")))
	b.waitJS(t, 10*time.Second, "topics listed", `!!document.querySelector('#topics tr[data-topic="presence:lobby"]')`)
	b.run(t, "open presence:lobby", chromedp.Click(chromedp.CSS(`#topics tr[data-topic="presence:lobby"]`)))
	// some traffic for the charts, over a few seconds
	for i := range 8 {
		for j, c := range users {
			c.send(fmt.Sprintf(`["2","m%d","rooms:lobby","new:msg",{"uid":"u%d","body":"message %d"}]`, i, j, i))
		}
		users[i%3].send(fmt.Sprintf(`["1","s%d","presence:lobby","status",{"status":%q}]`, i, []string{"away", "online"}[i%2]))
		time.Sleep(700 * time.Millisecond)
	}
	b.run(t, "playground",
		chromedp.Click(chromedp.CSS(`#pg-connect`)))
	b.waitJS(t, 5*time.Second, "playground connected", `document.querySelector('#pg-state').textContent === 'open'`)
	b.run(t, "join", chromedp.SetValue(chromedp.CSS(`#pg-join-payload`), `{"user": "pat"}`), chromedp.Click(chromedp.CSS(`#pg-join`)))
	b.waitJS(t, 5*time.Second, "joined", `document.querySelector('.channel[data-topic="rooms:lobby"] .state').textContent === 'joined'`)
	b.run(t, "push", chromedp.Click(chromedp.CSS(`.channel[data-topic="rooms:lobby"] .pg-push`)))
	b.waitJS(t, 5*time.Second, "new:msg back", `[...document.querySelectorAll('#pg-log li[data-dir="in"]')].some(li => li.textContent.includes('"new:msg"'))`)
	time.Sleep(time.Second)
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll("docs", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("docs", "console.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
