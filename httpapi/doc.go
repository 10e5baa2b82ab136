// Package httpapi is luachan's HTTP API for the world outside the sockets (SPEC section
// 1): POST /api/broadcast and /api/disconnect, and RequireKey, the one bearer-key check
// that the engine's /api/scripts is mounted behind too.
//
// It talks to the hub through the small Hub and Publisher interfaces it declares, so it
// needs nothing of the engine or of any broker; cmd/luachan mounts it. It holds no lock
// and starts no goroutine: each request runs on its net/http goroutine.
package httpapi
