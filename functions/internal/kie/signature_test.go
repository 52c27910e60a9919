package kie_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// The platform documentation's vector, as computed by
// printf '%s' 'fluxk_7f3a9c2e.1764300000' | openssl dgst -sha256 -hmac test-key -binary | base64
const (
	vectorKey       = "test-key"
	vectorTaskID    = "fluxk_7f3a9c2e"
	vectorTimestamp = "1764300000"
	vectorSignature = "FicixvKYdhX5/Z7eOFcOsxMG5ToCMQX1WkVX22if0BY="
)

func TestSignMatchesThePlatformsKnownVector(t *testing.T) {
	if got := kie.Sign([]byte(vectorKey), vectorTaskID, vectorTimestamp); got != vectorSignature {
		t.Errorf("Sign = %s, want %s", got, vectorSignature)
	}
}

func TestVerify(t *testing.T) {
	at := time.Unix(1764300000, 0)
	v := kie.NewVerifier(5 * time.Minute)
	if err := v.SetKeys(vectorKey); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                  string
		taskID, ts, signature string
		now                   time.Time
		wantErr               bool
	}{
		{"the known vector is accepted", vectorTaskID, vectorTimestamp, vectorSignature, at, false},
		{"a timestamp just inside the window is accepted", vectorTaskID, vectorTimestamp, vectorSignature, at.Add(5 * time.Minute), false},
		{"a timestamp from the future inside the window is accepted", vectorTaskID, vectorTimestamp, vectorSignature, at.Add(-5 * time.Minute), false},
		{"a stale timestamp is refused", vectorTaskID, vectorTimestamp, vectorSignature, at.Add(5*time.Minute + time.Second), true},
		{"a timestamp too far ahead is refused", vectorTaskID, vectorTimestamp, vectorSignature, at.Add(-6 * time.Minute), true},
		{"another task id is refused", "fluxk_other", vectorTimestamp, vectorSignature, at, true},
		{"a missing signature is refused", vectorTaskID, vectorTimestamp, "", at, true},
		{"a missing timestamp is refused", vectorTaskID, "", vectorSignature, at, true},
		{"a non-numeric timestamp is refused", vectorTaskID, "17643e5", vectorSignature, at, true},
		{"a signature that is not base64 is refused", vectorTaskID, vectorTimestamp, "%%%", at, true},
		{"44 base64 characters without padding are refused", vectorTaskID, vectorTimestamp, "FicixvKYdhX5/Z7eOFcOsxMG5ToCMQX1WkVX22if0BYA", at, true},
		{"a hex digest is refused", vectorTaskID, vectorTimestamp, strings.Repeat("ab", 32), at, true},
		{"a header of 8 KiB is refused", vectorTaskID, vectorTimestamp, strings.Repeat("A", 8<<10), at, true},
		{"a signature in URL-safe base64 is refused", vectorTaskID, vectorTimestamp, "FicixvKYdhX5_Z7eOFcOsxMG5ToCMQX1WkVX22if0BY=", at, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Verify(tt.taskID, tt.ts, tt.signature, tt.now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Verify error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && task.ErrorCode(err) != task.EUNAUTHORIZED {
				t.Errorf("code %s, want %s", task.ErrorCode(err), task.EUNAUTHORIZED)
			}
		})
	}
}

func ExampleSign() {
	fmt.Println(kie.Sign([]byte("test-key"), "fluxk_7f3a9c2e", "1764300000"))
	// Output: FicixvKYdhX5/Z7eOFcOsxMG5ToCMQX1WkVX22if0BY=
}

func TestVerifyWithSeveralKeys(t *testing.T) {
	at := time.Unix(1764300000, 0)
	sign := func(key string) string { return kie.Sign([]byte(key), vectorTaskID, vectorTimestamp) }
	tests := []struct {
		name, keys, signature string
		ok                    bool
	}{
		{"a signature under the first key passes", "test-key,new-key", sign("test-key"), true},
		{"a signature under the second key passes", "test-key,new-key", sign("new-key"), true},
		{"white space around each key is trimmed", " old-key ,\n test-key\t", vectorSignature, true},
		{"empty entries are skipped", ",,test-key,", vectorSignature, true},
		{"a signature under a key not held is refused", "old-key,new-key", vectorSignature, false},
		{"a signature under the whole list as one key is refused", "test-key,new-key", sign("test-key,new-key"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := kie.NewVerifier(5 * time.Minute)
			if err := v.SetKeys(tt.keys); err != nil {
				t.Fatal(err)
			}
			err := v.Verify(vectorTaskID, vectorTimestamp, tt.signature, at)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify error = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, task.ErrNoMatch) {
				t.Errorf("error %v does not say that no key matches", err)
			}
		})
	}
	t.Run("a list without a key is refused and the keys held are kept", func(t *testing.T) {
		v := kie.NewVerifier(5 * time.Minute)
		v.SetKeys(vectorKey)
		if err := v.SetKeys(" , "); err == nil {
			t.Error("want an error")
		}
		if err := v.Verify(vectorTaskID, vectorTimestamp, vectorSignature, at); err != nil {
			t.Errorf("the held key was dropped: %v", err)
		}
	})
	t.Run("a verifier without keys refuses every signature", func(t *testing.T) {
		err := kie.NewVerifier(5*time.Minute).Verify(vectorTaskID, vectorTimestamp, vectorSignature, at)
		if !errors.Is(err, task.ErrNoMatch) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("a malformed signature is not taken for a rotated key", func(t *testing.T) {
		v := kie.NewVerifier(5 * time.Minute)
		v.SetKeys(vectorKey)
		if err := v.Verify(vectorTaskID, vectorTimestamp, "%%%", at); err == nil || errors.Is(err, task.ErrNoMatch) {
			t.Errorf("error %v", err)
		}
	})
}
