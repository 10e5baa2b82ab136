//go:build !linux

package main

import "syscall"

// bindNoPort does nothing outside Linux.
func bindNoPort(syscall.RawConn) error { return nil }
