// Package fleet is the rollout engine of ulpfleet. It turns a selection of
// inventory hosts and a set of livepatch containers into a [Plan] (pure,
// deterministic: hosts in waves, canary wave(s) first, and the exact steps
// each host runs), and executes a plan with [Rollout.Run]: bounded fan-out
// per wave (a sliding window of [Rollout.Parallel] hosts), uploads under
// their own smaller limit, a canary gate and a failure threshold, and
// cancellation that says exactly which hosts were done, interrupted or not
// attempted. [Aggregate] turns `ulp patches --json` output from every host
// into a report of which hosts and processes carry which patch; the
// Messages action collects `ulp messages --json` from every host.
//
// Per-host outcomes are data ([HostResult]); the error returned by
// [Rollout.Run] is the [errors.Join] of the per-host errors, plus
// [ErrStopped] when the gate or threshold stopped the rollout and the
// context's error when it was cancelled.
//
// fleet does not read settings or print progress (fleet/cli does), and it
// does not speak SSH: it uses the [Conn] and [Dialer] interfaces, which
// *remote.Client and [SSHDialer] satisfy.
package fleet
