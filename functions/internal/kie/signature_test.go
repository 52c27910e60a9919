package kie_test

import (
	"fmt"
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
	v := kie.NewVerifier([]byte(vectorKey), 5*time.Minute)
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
