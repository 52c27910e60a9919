package task

import (
	"errors"
	"fmt"
)

// Error codes of the task's own failures. The Function URL handlers show
// each as one HTTP status (urlapi's table, which adds the codes of a
// request's HTTP shape). Whether a copy is retried is another matter,
// which package retry decides.
const (
	EINVALID      = "invalid"      // the body is not a callback we accept
	EUNAUTHORIZED = "unauthorized" // authentication failed
	ENOTFOUND     = "not_found"    // no such task, or no such route
	EUNAVAILABLE  = "unavailable"  // a dependency failed; the caller should retry
	EINTERNAL     = "internal"     // a bug or a misconfiguration
)

// ErrNoMatch is the cause of a credential (a signature, a token) that
// matches none of the keys held: they may have been rotated since read.
var ErrNoMatch = errors.New("matches none of the keys held")

// Error is an error with a code and a message that is safe to show to the
// caller. Err, when set, is the internal cause: it is logged, never shown.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error with a formatted, caller-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error that hides cause behind a caller-safe message.
func Wrap(code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, Err: cause}
}

// ErrorCode is the code of err, EINTERNAL for errors without one.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage is the caller-safe message of err; errors without a code have
// an opaque one so internal details never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
