package main

// Server and client cost, read from /proc: CPU time (user + system, all
// threads) and resident memory of a process.

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100
// on every Linux the tool runs on).
const clockTick = 10 * time.Millisecond

// procPath names /proc/PID/file, or /proc/self/file for pid 0.
func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + file
}

// procCPU is the CPU time the process has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields are counted after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: %s: no command field", procPath(pid, "stat"))
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: %s: short", procPath(pid, "stat"))
	}
	u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: %s: bad utime/stime", procPath(pid, "stat"))
	}
	return time.Duration(u+s) * clockTick, nil
}

// procRSS is the resident set size of the process in bytes.
func procRSS(pid int) (int64, error) {
	f, err := procLineField(pid, "status", "VmRSS:")
	if err != nil {
		return 0, err
	}
	kb, err := strconv.ParseInt(f, 10, 64)
	return kb << 10, err
}

// procLineField returns the first field after prefix on the line of /proc/PID/file that
// starts with it.
func procLineField(pid int, file, prefix string) (string, error) {
	b, err := os.ReadFile(procPath(pid, file))
	if err != nil {
		return "", err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(prefix)); ok {
			if f := bytes.Fields(rest); len(f) > 0 {
				return string(f[0]), nil
			}
		}
	}
	return "", fmt.Errorf("bench: %s: no %s", procPath(pid, file), prefix)
}

// cpuMeter measures the CPU a process spends between start and stop; a pid
// it cannot read (no /proc, or -addr without -pid) measures nothing.
type cpuMeter struct {
	pid   int
	ok    bool
	start time.Duration
}

func startCPU(pid int) cpuMeter {
	if pid < 0 {
		return cpuMeter{pid: pid}
	}
	c, err := procCPU(pid)
	return cpuMeter{pid: pid, ok: err == nil, start: c}
}

// stop is the CPU used since startCPU, and whether it was measured.
func (m cpuMeter) stop() (time.Duration, bool) {
	if !m.ok {
		return 0, false
	}
	c, err := procCPU(m.pid)
	if err != nil {
		return 0, false
	}
	return c - m.start, true
}

// cpuMeters measure several processes over the same interval: the nodes of
// a multi-node target, whose cost is their sum.
type cpuMeters []cpuMeter

// stop is each process's CPU since it was started, their sum, and whether
// every one was measured: a sum missing a node would flatter the figure.
func (ms cpuMeters) stop() (each []time.Duration, sum time.Duration, ok bool) {
	ok = len(ms) > 0
	for _, m := range ms {
		used, mok := m.stop()
		each = append(each, used)
		sum += used
		ok = ok && mok
	}
	return each, sum, ok
}

// procOpenFiles is how many files (sockets included) the process holds open.
func procOpenFiles(pid int) (int, error) {
	ents, err := os.ReadDir(procPath(pid, "fd"))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// procFileLimit is the process's soft limit on open files.
func procFileLimit(pid int) (int, error) {
	f, err := procLineField(pid, "limits", "Max open files")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f)
}
