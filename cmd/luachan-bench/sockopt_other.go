//go:build !linux

package main

import "syscall"

// bindNoPort does nothing outside Linux.
func bindNoPort(syscall.RawConn) error { return nil }

// raiseFileLimit leaves the open-file limit alone outside Linux, where the
// tool is only built, not measured with.
func raiseFileLimit() (uint64, error) { return 0, nil }
