package lambdamain_test

import (
	"testing"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/lambdamain"
)

func TestProcs(t *testing.T) {
	tests := []struct {
		name   string
		vars   map[string]string
		cpus   int
		want   int
		wantOK bool
	}{
		{"a 256 MB function on two cores runs on one", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}, 2, 1, true},
		{"a function of exactly one vCPU runs on one", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769"}, 6, 1, true},
		{"a megabyte more buys a second", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1770"}, 6, 2, true},
		{"a function of more vCPUs than the host has keeps Go's count", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "10240"}, 2, 0, false},
		{"a one-core host keeps Go's count", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"}, 1, 0, false},
		{"GOMAXPROCS set by the user wins", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "GOMAXPROCS": "2"}, 2, 0, false},
		{"a GOMAXPROCS the runtime ignores is not set", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "GOMAXPROCS": ""}, 2, 1, true},
		{"nor is one that is not a number", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "GOMAXPROCS": "all"}, 2, 1, true},
		{"an unknown memory changes nothing", map[string]string{}, 2, 0, false},
		{"an unreadable memory changes nothing", map[string]string{"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "lots"}, 2, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := lambdamain.Procs(envconf.Map(tt.vars), tt.cpus)
			if ok != tt.wantOK || (ok && n != tt.want) {
				t.Errorf("Procs = %d, %v; want %d, %v", n, ok, tt.want, tt.wantOK)
			}
		})
	}
}
