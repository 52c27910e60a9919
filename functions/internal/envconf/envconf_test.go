package envconf_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/envconf"
)

func TestEnvReadsValuesAndDefaults(t *testing.T) {
	env := envconf.New(envconf.Map(map[string]string{
		"NAME": "tasks", "FLAG": "true", "WAIT": "90s", "SIZE": "1024", "EMPTY": "",
	}))
	if got := env.Required("NAME"); got != "tasks" {
		t.Errorf("Required = %q", got)
	}
	if got := env.String("EMPTY", "fallback"); got != "fallback" {
		t.Errorf("an empty variable reads as unset, got %q", got)
	}
	if !env.Bool("FLAG", false) || env.Bool("UNSET", false) {
		t.Error("Bool read wrong")
	}
	if got := env.Duration("WAIT", time.Minute); got != 90*time.Second {
		t.Errorf("Duration = %v", got)
	}
	if got := env.Int64("SIZE", 1); got != 1024 {
		t.Errorf("Int64 = %d", got)
	}
	if got := env.Duration("UNSET", time.Minute); got != time.Minute {
		t.Errorf("default Duration = %v", got)
	}
	if err := env.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
}

func TestEnvNamesEveryBadVariable(t *testing.T) {
	env := envconf.New(envconf.Map(map[string]string{
		"FLAG": "yes please", "WAIT": "-1s", "SIZE": "big", "NEVER": "0s",
	}))
	env.Required("TABLE_NAME")
	env.Bool("FLAG", false)
	env.Duration("WAIT", time.Second)
	env.Duration("NEVER", time.Second)
	env.Int64("SIZE", 1)
	err := env.Err()
	for _, name := range []string{"TABLE_NAME: required", "FLAG:", "WAIT:", "NEVER:", "SIZE:"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}

func ExampleEnv() {
	env := envconf.New(envconf.Map(map[string]string{"RECORD_TTL": "soon"}))
	env.Required("TABLE_NAME")
	env.Duration("RECORD_TTL", 720*time.Hour)
	fmt.Println(env.Err())
	// Output:
	// TABLE_NAME: required but not set
	// RECORD_TTL: "soon" is not a positive duration such as 5m or 720h
}
