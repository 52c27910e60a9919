// Package retry is kiehook's one policy for whether a failed copy is
// tried again: PermanentError marks a failure no retry can pass, as the
// SDK's RetryableError marks the ones that can, and RefusedForGood judges
// an HTTP answer, a source's or S3's. Whether a copy is retried is
// IsPermanent, and nothing else.
package retry

import (
	"errors"
	"fmt"
)

// RefusedForGood reports whether an HTTP status refuses a request for
// good, so that retrying it cannot help: a 4xx other than 408 (timeout)
// and 429 (too many requests). A source's answer and S3's are judged alike.
func RefusedForGood(status int) bool {
	return status >= 400 && status < 500 && status != 408 && status != 429
}

// PermanentError is a copy failure that no retry can pass: a refused URL,
// a source's 404, an S3 refusal of the object itself. Its Reason is safe
// to record in the task. Every other failure is retried.
type PermanentError struct {
	Reason string
	Err    error // the cause, when there is one
}

func (e *PermanentError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks the error as one no retry can pass, as the SDK's
// RetryableError marks the ones that can.
func (e *PermanentError) Permanent() bool { return true }

// Permanentf is a PermanentError of a formatted reason.
func Permanentf(format string, args ...any) *PermanentError {
	return &PermanentError{Reason: fmt.Sprintf(format, args...)}
}

// IsPermanent reports whether err, or an error it wraps, says that no
// retry can pass: the one question of whether a copy is retried.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// PermanentReason is the recordable reason of a permanent err; "" when err
// is not permanent.
func PermanentReason(err error) string {
	var p *PermanentError
	if errors.As(err, &p) {
		return p.Reason
	}
	return ""
}
