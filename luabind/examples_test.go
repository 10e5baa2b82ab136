package luabind_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/luachan/luachan/luabind"
)

// examplesDir is the repository's example scripts, loaded here as a compile check.
const examplesDir = "../scripts/examples"

// TestExampleScripts loads every channel script in scripts/examples, and socket.lua (which
// decides who connects and is no channel) as a ConnectScript.
func TestExampleScripts(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(examplesDir, "*.lua"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Skip("no example scripts")
	}
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.lua") {
			continue // a script test (luachan test), never a channel
		}
		if filepath.Base(path) == "socket.lua" {
			t.Run("socket.lua", func(t *testing.T) {
				c, err := luabind.LoadConnect(luabind.Options{Dir: examplesDir}, path)
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
			})
			continue
		}
		t.Run(filepath.Base(path), func(t *testing.T) {
			s, err := luabind.Load(luabind.Options{Dir: examplesDir}, path)
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if s.Name() != filepath.Base(path) || s.Topic() == "" {
				t.Errorf("name %q topic %q", s.Name(), s.Topic())
			}
		})
	}
}
