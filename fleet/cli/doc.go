// Package cli is the cobra command tree of ulpfleet: apply, revert, push,
// plan, retry (from the results file every rollout saves), status, ping,
// messages and version. It owns the controller's settings (one
// viper instance per run: flags, ULPFLEET_* environment, config file, one
// name each), the loggers (slog to stderr), the output (tables, --json
// records, the progress line on a terminal) and the exit statuses
// (ExitCode). It is the only package of the fleet side that reads settings
// or builds loggers; the rollout itself is package fleet's, the inventory
// package inventory's and SSH package remote's.
package cli
