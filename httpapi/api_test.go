package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/luachan/luachan/httpapi"
	"github.com/luachan/luachan/hub"
	"github.com/luachan/luachan/internal/hubtest"
)

// apiCall posts body to path on api with the given Authorization header value.
func apiCall(tb testing.TB, api http.Handler, path, auth, body string) (int, string) {
	tb.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestAPIAuth(t *testing.T) {
	ts := hubtest.StartServer(t, hub.Config{})
	api := httpapi.New(httpapi.Config{Key: "s3cret", Hub: ts.Hub})
	body := `{"topic":"t","event":"e","payload":{}}`
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"no key", "", http.StatusUnauthorized},
		{"wrong key", "Bearer nope", http.StatusUnauthorized},
		{"longer key", "Bearer s3cret2", http.StatusUnauthorized},
		{"not bearer", "Basic s3cret", http.StatusUnauthorized},
		{"right key", "Bearer s3cret", http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, resp := apiCall(t, api, "/api/broadcast", tc.auth, body); status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, resp, tc.status)
			}
		})
	}
	if status, _ := apiCall(t, httpapi.New(httpapi.Config{Key: "", Hub: ts.Hub}), "/api/broadcast", "Bearer ", body); status != http.StatusNotFound {
		t.Fatalf("API without a key: %d, want 404", status)
	}
}

func TestAPIBroadcast(t *testing.T) {
	ts := hubtest.StartServer(t, hub.Config{})
	c := ts.Dial(t, "vsn=2.0.0")
	ts.Join(c, "rooms:lobby")
	api := httpapi.New(httpapi.Config{Key: "k", Hub: ts.Hub})
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"not JSON", `nope`, http.StatusBadRequest},
		{"array", `[1]`, http.StatusBadRequest},
		{"no topic", `{"event":"e","payload":{}}`, http.StatusBadRequest},
		{"no event", `{"topic":"t","payload":{}}`, http.StatusBadRequest},
		{"payload not object", `{"topic":"t","event":"e","payload":[1]}`, http.StatusBadRequest},
		{"payload string", `{"topic":"t","event":"e","payload":"x"}`, http.StatusBadRequest},
		{"trailing data", `{"topic":"t","event":"e","payload":{}} {}`, http.StatusBadRequest},
		{"trailing bracket", `{"topic":"t","event":"e","payload":{}} ]`, http.StatusBadRequest},
		{"null", `null`, http.StatusBadRequest},
		{"too large", `{"topic":"t","event":"e","payload":{"a":"` + strings.Repeat("x", 2<<20) + `"}}`, http.StatusBadRequest},
		{"too deep", `{"topic":"t","event":"e","payload":` + strings.Repeat(`{"a":`, 65) + `1` + strings.Repeat(`}`, 65) + `}`, http.StatusBadRequest},
		{"ok", `{"topic":"rooms:lobby","event":"news","payload":{"n":1}}`, http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, resp := apiCall(t, api, "/api/broadcast", "Bearer k", tc.body); status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, resp, tc.status)
			}
		})
	}
	_, data := c.Read()
	hubtest.ExpectJSON(t, data, `[null,null,"rooms:lobby","news",{"n":1}]`)
}

func TestAPIDisconnect(t *testing.T) {
	ts := hubtest.StartServer(t, hub.Config{})
	c := ts.Dial(t, "vsn=2.0.0&id=user:7")
	api := httpapi.New(httpapi.Config{Key: "k", Hub: ts.Hub})
	if status, _ := apiCall(t, api, "/api/disconnect", "Bearer k", `{}`); status != http.StatusBadRequest {
		t.Fatalf("no id: %d, want 400", status)
	}
	status, resp := apiCall(t, api, "/api/disconnect", "Bearer k", `{"id":"user:7"}`)
	if status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	hubtest.ExpectJSON(t, []byte(resp), `{"closed":1}`)
	c.ExpectClose(hub.CloseGoingAway)
	c.ClosedReason()
}

// recorder is a Publisher that records what it is given.
type recorder struct{ got []*hub.Broadcast }

func (r *recorder) Publish(b *hub.Broadcast) error { r.got = append(r.got, b); return nil }

func TestAPIDisconnectTellsOtherNodes(t *testing.T) {
	ts := hubtest.StartServer(t, hub.Config{})
	var pub recorder
	api := httpapi.New(httpapi.Config{Key: "k", Hub: ts.Hub, PubSub: &pub})
	if status, resp := apiCall(t, api, "/api/disconnect", "Bearer k", `{"id":"user:9"}`); status != http.StatusAccepted {
		t.Fatalf("status %d (%s)", status, resp)
	}
	if len(pub.got) != 1 || pub.got[0].Topic != "user:9" || pub.got[0].Event != "disconnect" || string(pub.got[0].Payload) != "{}" {
		t.Fatalf("published %+v, want one disconnect on user:9", pub.got)
	}
}

// fakeHistory keeps one topic, "feed", at position "e:2" with entries 1 and 2.
type fakeHistory struct{}

func (fakeHistory) History(topic, since string, limit int) ([]httpapi.HistoryEntry, string, bool, bool) {
	if topic != "feed" {
		return nil, "", false, false
	}
	all := []httpapi.HistoryEntry{
		{Position: "e:1", Event: "a", Payload: []byte(`{"n":1}`)},
		{Position: "e:2", Event: "a", Payload: []byte(`{"n":2}`)},
	}
	switch since {
	case "", "e:0":
		if limit > 0 && limit < len(all) {
			all = all[len(all)-limit:]
		}
		return all, "e:2", true, true
	case "e:1":
		return all[1:], "e:2", true, true
	}
	return nil, "e:2", false, true
}

func TestAPIHistory(t *testing.T) {
	ts := hubtest.StartServer(t, hub.Config{})
	api := httpapi.New(httpapi.Config{Key: "k", Hub: ts.Hub, History: fakeHistory{}})
	for _, tc := range []struct {
		name, query, auth string
		status            int
		body              string
	}{
		{"since", "topic=feed&since=e:1", "Bearer k", http.StatusOK, `[{"position":"e:2","event":"a","payload":{"n":2}}]`},
		{"latest", "topic=feed&limit=1", "Bearer k", http.StatusOK, `[{"position":"e:2","event":"a","payload":{"n":2}}]`},
		{"too old", "topic=feed&since=x:1", "Bearer k", http.StatusGone, ""},
		{"no history", "topic=other", "Bearer k", http.StatusNotFound, ""},
		{"no topic", "", "Bearer k", http.StatusBadRequest, ""},
		{"bad limit", "topic=feed&limit=0", "Bearer k", http.StatusBadRequest, ""},
		{"no key", "topic=feed", "", http.StatusUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/history?"+tc.query, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, req)
			body := strings.TrimSpace(rec.Body.String())
			if rec.Code != tc.status || (tc.body != "" && body != tc.body) {
				t.Fatalf("GET /api/history?%s: %d %s, want %d %s", tc.query, rec.Code, body, tc.status, tc.body)
			}
			if rec.Code == http.StatusOK && rec.Header().Get("X-History-Position") != "e:2" {
				t.Fatalf("X-History-Position %q", rec.Header().Get("X-History-Position"))
			}
		})
	}
}
