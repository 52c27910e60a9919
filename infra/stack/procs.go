package stack

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// children are the pids whose parent is pid (the bootstrap under an
// emulator), read from /proc.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, stat := range stats {
		b, err := os.ReadFile(stat)
		if err != nil {
			continue
		}
		// The fields after the parenthesised command: state, ppid, …
		s := string(b)
		rest := s[strings.LastIndexByte(s, ')')+1:]
		fields := strings.Fields(rest)
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(stat)))
			kids = append(kids, child)
		}
	}
	return kids
}

// peakRSS is a process's VmHWM in bytes, 0 if unknown.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// bootstraps are the function processes the emulator runs now.
func (f *function) bootstraps() []int { return children(f.cmd.Process.Pid) }

// PeakRSS is the largest peak resident set of each function's processes
// so far, in bytes, by function name.
func (s *Stack) PeakRSS() map[string]int64 {
	peaks := map[string]int64{}
	for _, f := range s.functions {
		for _, pid := range f.bootstraps() {
			peaks[f.name] = max(peaks[f.name], peakRSS(pid))
		}
	}
	return peaks
}

// KillCopier kills the copier's process mid-work, as a crashed sandbox
// would be; the emulator starts a new one for the next batch.
func (s *Stack) KillCopier() int {
	killed := 0
	for _, pid := range s.copier.bootstraps() {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	return killed
}
