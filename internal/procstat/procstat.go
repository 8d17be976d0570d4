// Package procstat reads a process's own figures from Linux's /proc.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// PeakRSS returns the peak resident memory of process pid in bytes (Linux's VmHWM), or 0
// when it cannot be read.
func PeakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			return kib << 10
		}
	}
	return 0
}

// CPUTime returns the CPU time, user and system, that process pid has used: utime and
// stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks of 1/100 s (USER_HZ, 100 on
// Linux). It is 0 when the file cannot be read.
func CPUTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Field 2, the command name, is in parentheses and may hold spaces: count after it.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// CPUTimesOf returns CPUTime of every process on this machine whose command name is comm,
// by pid (for "postgres": a server's backends, its background workers and the postmaster).
func CPUTimesOf(comm string) map[int]time.Duration {
	cpu := make(map[int]time.Duration)
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if name, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(name)) == comm {
			cpu[pid] = CPUTime(pid)
		}
	}
	return cpu
}
