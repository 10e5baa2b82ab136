package luachan_test

// GET /api/scripts (issue 3's visibility): every script file with its topic pattern,
// content hash, load time and last load error.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// scriptInfo is one entry of GET /api/scripts.
type scriptInfo struct {
	File     string          `json:"file"`
	Topic    string          `json:"topic"`
	Hash     string          `json:"hash"`
	LoadedAt json.RawMessage `json:"loaded_at"`
	Error    *string         `json:"error"`
	Warnings []string        `json:"warnings"`
	Socket   bool            `json:"socket"`
	Calls    uint64          `json:"calls"`
}

// loaded returns LoadedAt as a time: an RFC 3339 string, or a number of Unix milliseconds.
func (si scriptInfo) loaded() (time.Time, error) {
	var s string
	if err := json.Unmarshal(si.LoadedAt, &s); err == nil {
		return time.Parse(time.RFC3339Nano, s)
	}
	var ms int64
	if err := json.Unmarshal(si.LoadedAt, &ms); err == nil && ms > 0 {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, fmt.Errorf("loaded_at %s is neither an RFC 3339 time nor Unix milliseconds", si.LoadedAt)
}

func (si scriptInfo) errorText() string {
	if si.Error == nil {
		return ""
	}
	return *si.Error
}

// getScripts fetches GET /api/scripts with key and returns the status and, on 200, the
// entries by file name.
func getScripts(tb testing.TB, s *server, key string) (int, map[string]scriptInfo) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url("/api/scripts"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		tb.Fatalf("GET /api/scripts: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET /api/scripts: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	var list []scriptInfo
	if err := json.Unmarshal(body, &list); err != nil {
		tb.Fatalf("GET /api/scripts: %v; body: %s", err, body)
	}
	byFile := map[string]scriptInfo{}
	for _, si := range list {
		if _, dup := byFile[si.File]; dup {
			tb.Fatalf("GET /api/scripts lists %s twice: %s", si.File, body)
		}
		byFile[si.File] = si
	}
	return resp.StatusCode, byFile
}

func TestAPIScripts(t *testing.T) {
	t.Parallel()
	dir := writeScripts(t, map[string]string{
		"reload.lua": counterLua("reload:*", 1),
		"other.lua":  counterLua("other:lobby", 1),
	})
	path := filepath.Join(dir, "reload.lua")
	s := startServer(t, dir, "-api-key", apiKey)

	if code, _ := getScripts(t, s, ""); code != http.StatusUnauthorized {
		t.Fatalf("GET /api/scripts without the key: HTTP %d, want 401", code)
	}
	if code, _ := getScripts(t, s, "not-the-key"); code != http.StatusUnauthorized {
		t.Fatalf("GET /api/scripts with a wrong key: HTTP %d, want 401", code)
	}

	// get fetches the list and requires file to be in it
	get := func(t *testing.T, file string) scriptInfo {
		t.Helper()
		code, list := getScripts(t, s, apiKey)
		if code != http.StatusOK {
			t.Fatalf("GET /api/scripts: HTTP %d, want 200", code)
		}
		si, ok := list[file]
		if !ok {
			t.Fatalf("GET /api/scripts does not list %s: %v", file, list)
		}
		return si
	}

	first := get(t, "reload.lua")
	firstAt, err := first.loaded()
	if first.Topic != "reload:*" || len(first.Hash) < 16 || err != nil || first.errorText() != "" {
		t.Fatalf("reload.lua listed as %+v (%v), want topic reload:*, a hash, a load time and no error", first, err)
	}
	if since := time.Since(firstAt); since < 0 || since > time.Minute {
		t.Fatalf("reload.lua loaded_at %v, want the server's start", firstAt)
	}
	if other := get(t, "other.lua"); other.Topic != "other:lobby" || other.Hash == first.Hash || other.errorText() != "" {
		t.Fatalf("other.lua listed as %+v, want topic other:lobby, its own hash and no error", other)
	}

	// a broken save: the error is listed, the running version still described
	saveRenameOver(t, path, brokenLua)
	var broken scriptInfo
	err = poll(reloadWithin, func() error {
		broken = get(t, "reload.lua")
		if !strings.Contains(broken.errorText(), "reload.lua:3") {
			return fmt.Errorf("reload.lua listed as %+v, want the error at reload.lua:3", broken)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if broken.Topic != "reload:*" || string(broken.LoadedAt) != string(first.LoadedAt) {
		t.Fatalf("after a broken save reload.lua is listed as %+v, want the running version (topic reload:*, loaded_at %s)", broken, first.LoadedAt)
	}

	// the fix: a new hash and load time, no error
	saveRenameOver(t, path, counterLua("reload:*", 2))
	err = poll(reloadWithin, func() error {
		si := get(t, "reload.lua")
		at, err := si.loaded()
		switch {
		case err != nil:
			return err
		case si.errorText() != "":
			return fmt.Errorf("reload.lua still listed with error %q", si.errorText())
		case si.Hash == first.Hash:
			return fmt.Errorf("reload.lua's hash unchanged after a new version loaded")
		case !at.After(firstAt):
			return fmt.Errorf("reload.lua loaded_at %v, not after the first load at %v", at, firstAt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// a new script that never loaded is listed with its error, so a user can see why
	writeFile(t, filepath.Join(dir, "new.lua"), "return { topic = \"new:*\" }\n")
	err = poll(reloadWithin, func() error {
		_, list := getScripts(t, s, apiKey)
		si, ok := list["new.lua"]
		if !ok || !strings.Contains(si.errorText(), "join") {
			return fmt.Errorf("new.lua listed as %+v (listed: %v), want its load error", si, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
