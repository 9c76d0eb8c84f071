// Package errdefs holds the error classes that domain packages return.
//
// Domain code never knows about HTTP or AWS wire formats. It returns an error
// of one of the classes below, optionally carrying the precise AWS error code
// a client expects (for example "InvalidSubnet.Conflict"), and api/ turns it
// into the service's wire error in exactly one function. This mirrors
// containerd's errdefs + errgrpc split.
package errdefs

import (
	"errors"
	"fmt"
)

// Class is the broad kind of failure; api/ picks a default AWS code from it
// when the error carries no specific code.
type Class int

// The error classes. Keep the list short: a new class is only worth adding
// when api/ must map it to a different HTTP status or default code.
const (
	ClassUnknown Class = iota
	ClassNotFound
	ClassAlreadyExists
	ClassInvalidParameter
	ClassMissingParameter
	ClassConflict
	ClassLimitExceeded
	ClassAccessDenied
	ClassUnauthenticated
	ClassUnavailable
	ClassNotImplemented
	ClassInternal
)

var classNames = map[Class]string{
	ClassUnknown:          "unknown",
	ClassNotFound:         "not found",
	ClassAlreadyExists:    "already exists",
	ClassInvalidParameter: "invalid parameter",
	ClassMissingParameter: "missing parameter",
	ClassConflict:         "conflict",
	ClassLimitExceeded:    "limit exceeded",
	ClassAccessDenied:     "access denied",
	ClassUnauthenticated:  "unauthenticated",
	ClassUnavailable:      "unavailable",
	ClassNotImplemented:   "not implemented",
	ClassInternal:         "internal",
}

// String names the class for logs.
func (c Class) String() string { return classNames[c] }

// Error is a classified error with an optional AWS error code.
type Error struct {
	Class Class
	// Code is the AWS error code to send, e.g. "InvalidVpcID.NotFound".
	// Empty means api/ chooses the default for Class and service.
	Code    string
	Message string
	// Err is the underlying cause, kept for logs and errors.Is.
	Err error
}

// Error returns the message (with the cause for logs).
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap exposes the cause.
func (e *Error) Unwrap() error { return e.Err }

// New makes a classified error with an AWS code and a formatted message.
// The message must say what was wrong and what to do about it.
func New(class Class, code, format string, args ...any) *Error {
	return &Error{Class: class, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap classifies an existing error, keeping it as the cause.
func Wrap(class Class, code string, err error, format string, args ...any) *Error {
	return &Error{Class: class, Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// ClassOf returns the class of the first *Error in err's chain, or
// ClassUnknown.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ClassUnknown
}

// Is reports whether err carries the given class.
func Is(err error, class Class) bool { return ClassOf(err) == class }

// NotFound, InvalidParameter and friends are shorthands for the common
// classes.
func NotFound(code, format string, args ...any) *Error {
	return New(ClassNotFound, code, format, args...)
}

// InvalidParameter reports a parameter value the caller must fix.
func InvalidParameter(code, format string, args ...any) *Error {
	return New(ClassInvalidParameter, code, format, args...)
}

// AlreadyExists reports a name or id that is taken.
func AlreadyExists(code, format string, args ...any) *Error {
	return New(ClassAlreadyExists, code, format, args...)
}

// Conflict reports a state that does not allow the operation now.
func Conflict(code, format string, args ...any) *Error {
	return New(ClassConflict, code, format, args...)
}

// LimitExceeded reports a quota that would be exceeded.
func LimitExceeded(code, format string, args ...any) *Error {
	return New(ClassLimitExceeded, code, format, args...)
}
