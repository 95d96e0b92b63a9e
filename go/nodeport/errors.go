package nodeport

import (
	"errors"
	"fmt"
)

// The errors every failure wraps, for errors.Is. They are the C ABI's codes
// (include/nodeport/nodeport.h), so a controller moving between the two
// handles the same cases. A wait cut short by its context also wraps the
// context's error (context.Canceled, context.DeadlineExceeded).
var (
	ErrBadInput     = errors.New("bad input")
	ErrNotLoaded    = errors.New("nodeport is not loaded")
	ErrNotFound     = errors.New("not mapped")
	ErrOwnedByOther = errors.New("held by another owner")
	ErrPermission   = errors.New("permission denied")
	ErrBusy         = errors.New("the pin directory's lock is busy")
	ErrInternal     = errors.New("internal error")
	ErrClosed       = errors.New("table is closed")
	ErrTimedOut     = errors.New("the wait ended with connections left") // Drain
)

// Error is a failed call: the operation, what kind of failure, and a message
// that says what to do ("bad input: backend address: '127.0.0.1' is not a
// unicast address a sandbox can have").
type Error struct {
	Op      string // "set tcp/6667", "open /sys/fs/bpf/nodeport", ...
	Message string
	kind    error
	cause   error // a context's error, or nil
}

func (e *Error) Error() string { return "nodeport: " + e.Op + ": " + e.Message }

// Unwrap gives the kind (ErrBadInput, ...) and, for a wait a context ended,
// the context's error.
func (e *Error) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

func newError(kind error, op, format string, args ...any) *Error {
	return &Error{Op: op, Message: fmt.Sprintf(format, args...), kind: kind}
}

// inputError is a validation failure before anything is changed: the field
// and what is wrong with it, as the C++ library's InputError.
type inputError struct {
	field, message string
}

func (e inputError) to(op string) *Error {
	return newError(ErrBadInput, op, "bad input: %s: %s", e.field, e.message)
}
