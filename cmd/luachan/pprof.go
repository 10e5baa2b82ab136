//go:build pprof

package main

import (
	"log"
	"net/http"
	_ "net/http/pprof" // the profiling handlers, on their own listener
	"os"
)

// A build with -tags pprof serves net/http/pprof on LUACHAN_PPROF (a host:port on
// loopback), for the profiles in BENCHMARKS.md. Release builds have none of it.
func init() {
	addr := os.Getenv("LUACHAN_PPROF")
	if addr == "" {
		return
	}
	go func() {
		log.Printf("pprof: %v", http.ListenAndServe(addr, nil))
	}()
}
