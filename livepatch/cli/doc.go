// Package cli is the cobra command tree of the ulp agent: one file per
// command, each turning flags into calls on the engine packages and their
// results into text, NDJSON and exit statuses. It holds no patching logic:
// a trigger is one trigger.Session, its containers read and its processes
// handled there.
package cli
