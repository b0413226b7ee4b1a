package fleet

import (
	"context"
	"errors"

	"ulp/livepatch/report"
	"ulp/remote"
)

// Class names what happened to a host, finer than its State: "success",
// "partial" (some processes patched, some failed), "patch_failed" (no
// process patched, some failed), "unreachable", "auth_failed",
// "host_key_unknown", "host_key_changed", "upload_failed", "locked"
// (another rollout holds the host), "health_failed", "connection_lost",
// "agent_error", "timeout", "interrupted", "not_attempted" or "failed".
func (hr *HostResult) Class() string {
	switch hr.State {
	case StateOK:
		return "success"
	case StateNotAttempted:
		return "not_attempted"
	case StateInterrupted:
		return "interrupted"
	case StateError:
		if hr.Patched > 0 {
			return "partial"
		}
		return "patch_failed"
	}
	var xe *remote.ExitError
	switch err := hr.Err; {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrLocked):
		return "locked"
	case errors.Is(err, ErrHealth):
		return "health_failed"
	case errors.Is(err, remote.ErrHostKeyMismatch):
		return "host_key_changed"
	case errors.Is(err, remote.ErrHostKeyUnknown):
		return "host_key_unknown"
	case errors.Is(err, remote.ErrAuth):
		return "auth_failed"
	case errors.Is(err, remote.ErrUnreachable), errors.Is(err, remote.ErrHandshake):
		return "unreachable"
	case errors.Is(err, remote.ErrUpload):
		return "upload_failed"
	case errors.Is(err, remote.ErrConnLost), errors.Is(err, remote.ErrExitMissing):
		return "connection_lost"
	case errors.As(err, &xe), errors.Is(err, report.ErrInvalid):
		return "agent_error"
	}
	return "failed"
}
