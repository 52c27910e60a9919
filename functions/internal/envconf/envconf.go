// Package envconf reads a function's configuration from its environment and
// collects every problem, each naming its variable, so that a misconfigured
// function stops at start-up with one clear message.
package envconf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Env reads variables through lookup (os.LookupEnv in main, a map in tests).
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
}

// New returns an Env that reads through lookup.
func New(lookup func(string) (string, bool)) *Env { return &Env{lookup: lookup} }

// Map is a lookup over a fixed set of variables.
func Map(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func (e *Env) get(name string) (string, bool) {
	v, ok := e.lookup(name)
	return v, ok && v != ""
}

func (e *Env) fail(name, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

// Required is a variable that must be set and not empty.
func (e *Env) Required(name string) string {
	v, ok := e.get(name)
	if !ok {
		e.fail(name, "required but not set")
	}
	return v
}

// String is a variable, or def when it is unset or empty.
func (e *Env) String(name, def string) string {
	if v, ok := e.get(name); ok {
		return v
	}
	return def
}

// Bool is a variable parsed by strconv.ParseBool, or def.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, "%q is not true or false", v)
	}
	return b
}

// Duration is a positive Go duration such as 5m, or def.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.fail(name, "%q is not a positive duration such as 5m or 720h", v)
	}
	return d
}

// Int64 is a positive integer, or def.
func (e *Env) Int64(name string, def int64) int64 {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		e.fail(name, "%q is not a positive integer", v)
	}
	return n
}

// Err is every problem found so far, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Credential is a setting given either as its value (NAME) or, the deployed
// way, as the name or ARN of a Secrets Manager secret holding it
// (NAME_SECRET): a webhook key, a token, an API key.
type Credential struct {
	Name     string // NAME; the secret's variable is NAME_SECRET
	Value    string
	SecretID string
}

// Set reports whether the credential is given, in either form.
func (c Credential) Set() bool { return c.Value != "" || c.SecretID != "" }

// SecretVariable is the variable that names the credential's secret.
func (c Credential) SecretVariable() string { return c.Name + "_SECRET" }

// Credential reads NAME and NAME_SECRET; setting both is an error.
func (e *Env) Credential(name string) Credential {
	c := Credential{Name: name, Value: e.String(name, ""), SecretID: e.String(name+"_SECRET", "")}
	if c.Value != "" && c.SecretID != "" {
		e.fail(name, "set %s or %s, not both", name, c.SecretVariable())
	}
	return c
}

// Values are the entries of a setting that may hold several, separated by
// commas (webhook keys, tokens, hosts): each trimmed of white space, empty
// ones skipped.
func Values(list string) []string {
	var out []string
	for v := range strings.SplitSeq(list, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
