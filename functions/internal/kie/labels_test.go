package kie_test

import (
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"

	"github.com/kiehook/kiehook/functions/internal/kie"
)

func TestLabelsFromQuery(t *testing.T) {
	many := []string{}
	for i := range 12 {
		many = append(many, fmt.Sprintf("l%d=%d", i, i))
	}
	tests := []struct {
		name, query string
		want        map[string]string
		dropped     int
	}{
		{"the token is no label", "token=secret", nil, 0},
		{"the submission's id is no label", "token=s&sid=sub_0123456789abcdef01234567&uid=1", map[string]string{"uid": "1"}, 0},
		{"an application's identifiers become labels", "token=s&uid=u_42&run_id=7", map[string]string{"uid": "u_42", "run_id": "7"}, 0},
		{"values are URL-decoded", "note=hello%20world&name=J%C3%A9r%C3%B4me", map[string]string{"note": "hello world", "name": "Jérôme"}, 0},
		{"an empty value is a label", "job=", map[string]string{"job": ""}, 0},
		{"a bad name is dropped, the rest kept", "bad%20name=1&user%2Fid=2&ok=3", map[string]string{"ok": "3"}, 2},
		{"a name of 65 characters is dropped", strings.Repeat("n", 65) + "=1", nil, 1},
		{"a value over 256 bytes is dropped", "v=" + strings.Repeat("é", 129), nil, 1},
		{"a value that is not UTF-8 is dropped", "v=%ff", nil, 1},
		{"a parameter that is not URL-encoded is dropped", "v=%zz&ok=1", map[string]string{"ok": "1"}, 1},
		{"a repeated name keeps its first value", "job=1&job=2", map[string]string{"job": "1"}, 1},
		{"past ten labels the rest are dropped, in order", strings.Join(many, "&"), nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped := kie.LabelsFromQuery(tt.query)
			if tt.want != nil && !maps.Equal(got, tt.want) || len(dropped) != tt.dropped {
				t.Errorf("labels %v, dropped %q", got, dropped)
			}
			if len(got) > kie.MaxLabels {
				t.Errorf("%d labels kept", len(got))
			}
		})
	}
	t.Run("the first ten are the ones kept", func(t *testing.T) {
		got, _ := kie.LabelsFromQuery(strings.Join(many, "&"))
		if _, ok := got["l9"]; !ok || got["l10"] != "" {
			t.Errorf("labels %v", got)
		}
	})
}

func TestCheckLabelsRefusesWhatACallbackWouldDrop(t *testing.T) {
	if err := kie.CheckLabels(map[string]string{"uid": "u_42", "job": "7"}); err != nil {
		t.Error(err)
	}
	for _, bad := range []map[string]string{{"bad name": "1"}, {"v": strings.Repeat("x", 257)}, {"token": "x"}} {
		if err := kie.CheckLabels(bad); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
	eleven := map[string]string{}
	for i := range 11 {
		eleven[fmt.Sprint("l", i)] = ""
	}
	if err := kie.CheckLabels(eleven); err == nil {
		t.Error("eleven labels: want an error")
	}
}

func TestSubmissionFromQuery(t *testing.T) {
	for _, tt := range []struct{ name, query, want string }{
		{"a callback URL kiehook made names its submission", "token=s&sid=sub_0123456789abcdef01234567", "sub_0123456789abcdef01234567"},
		{"a callback URL of the application's own names none", "token=s&uid=1", ""},
		{"a sid that is no submission id names none", "sid=../../etc", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := kie.SubmissionFromQuery(tt.query); got != tt.want {
				t.Errorf("%q", got)
			}
		})
	}
}

func TestNamesHaveTheContractsForm(t *testing.T) {
	tests := []struct {
		name string
		ok   func() bool
		want bool
	}{
		{"a label name of letters, digits and _ . - is a name", func() bool { return kie.IsName("Order_id.v-2", "_.-", 64) }, true},
		{"a name of 64 bytes is one", func() bool { return kie.IsName(strings.Repeat("a", 64), "_.-", 64) }, true},
		{"a name of 65 bytes is not", func() bool { return kie.IsName(strings.Repeat("a", 65), "_.-", 64) }, false},
		{"an empty name is not", func() bool { return kie.IsName("", "_.-", 64) }, false},
		{"a colon is not in a label name", func() bool { return kie.IsName("a:b", "_.-", 64) }, false},
		{"a colon is in an Idempotency-Key", func() bool { return kie.IsName("order:1", "_.:-", 64) }, true},
		{"a space is in neither", func() bool { return kie.IsName("a b", "_.:-", 64) }, false},
		{"a letter outside ASCII is in neither", func() bool { return kie.IsName("café", "_.:-", 64) }, false},
		{"a submission id is sub_ and 24 lowercase hex digits", func() bool { return kie.IsSubmissionID("sub_ca29c5dad9537c2a41cd6107") }, true},
		{"uppercase hex is not a submission id", func() bool { return kie.IsSubmissionID("sub_CA29C5DAD9537C2A41CD6107") }, false},
		{"23 digits are not", func() bool { return kie.IsSubmissionID("sub_ca29c5dad9537c2a41cd610") }, false},
		{"25 digits are not", func() bool { return kie.IsSubmissionID("sub_ca29c5dad9537c2a41cd61077") }, false},
		{"another prefix is not", func() bool { return kie.IsSubmissionID("sob_ca29c5dad9537c2a41cd6107") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ok(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNamesAgreeWithTheContractsPatterns holds IsName and IsSubmissionID
// to the contract's regular expressions, over every byte in every place
// of a short name and of a submission id.
func TestNamesAgreeWithTheContractsPatterns(t *testing.T) {
	label, key := regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`), regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
	sid := regexp.MustCompile(`^sub_[0-9a-f]{24}$`)
	const id = "sub_ca29c5dad9537c2a41cd6107"
	for c := range 256 {
		for _, s := range []string{string(rune(c)), "a" + string(byte(c)), string(byte(c)) + "Z9"} {
			if kie.IsName(s, "_.-", 64) != label.MatchString(s) || kie.IsName(s, "_.:-", 64) != key.MatchString(s) {
				t.Errorf("%q: IsName disagrees with the pattern", s)
			}
		}
		for i := range len(id) {
			s := id[:i] + string(byte(c)) + id[i+1:]
			if kie.IsSubmissionID(s) != sid.MatchString(s) {
				t.Errorf("%q: IsSubmissionID disagrees with the pattern", s)
			}
		}
	}
}
