package main

import (
	"fmt"
	"io"

	"github.com/luachan/luachan/luabind"
)

// subcommands are the commands `luachan NAME` runs instead of the server.
var subcommands = map[string]func(args []string, stdout, stderr io.Writer) error{
	"types": runTypes,
	"test":  runScriptTests,
}

// runTypes is `luachan types`: the LuaLS annotations of the script API on stdout, for
// `luachan types > luachan.d.lua`.
func runTypes(args []string, stdout, _ io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("%w: luachan types takes no arguments (write its output to a file: luachan types > luachan.d.lua)", errUsage)
	}
	_, err := io.WriteString(stdout, luabind.Types())
	return err
}
