package main

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// tlsHandshakePrefix starts the line net/http logs for a failed TLS handshake.
const tlsHandshakePrefix = "http: TLS handshake error from "

// httpErrorLog is http.Server's ErrorLog, with a stable msg: net/http writes free text,
// with the remote address and the error in it, which would make every line's msg new.
// A failed TLS handshake (a scanner, a plain HTTP request on the TLS port, a client that
// does not trust the certificate) is routine and logged at debug level; anything else is
// a warning.
func httpErrorLog(l *slog.Logger) *log.Logger {
	return log.New(httpLogWriter{l}, "", 0)
}

type httpLogWriter struct{ log *slog.Logger }

func (w httpLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if rest, ok := strings.CutPrefix(line, tlsHandshakePrefix); ok {
		remote, err, _ := strings.Cut(rest, ": ")
		w.log.Log(context.Background(), slog.LevelDebug, "TLS handshake failed", "remote", remote, "err", err)
		return len(p), nil
	}
	w.log.Warn("HTTP server error", "err", line)
	return len(p), nil
}
