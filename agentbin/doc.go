// Package agentbin holds the static ulp agent that ulpfleet uploads to
// hosts, embedded at build time so that a push needs no other file.
//
// `make` builds build/ulp-agent (ulp without the commands that build and
// package livepatches, -tags fleetagent) and copies it to agentbin/bin/ulp
// before building ulpfleet; //go:embed picks it up from there. A binary built without that
// step (plain `go build ./...`, `go test`) embeds no agent, and [Agent]
// returns [ErrNoAgent].
//
// The agent's identity is its content: [Info.SHA256] is the sha256 of the
// embedded bytes, and [Info.Version] is "sha256:" plus its first 16 hex
// digits, as its copy on hosts is named (bin/ulp-<16 hex digits>). This
// needs no version string kept in step with the agent's
// source, and a host's copy is compared with these bytes (hashed on the
// host, see remote.Client.Upload): two agents with the same Version are
// the same bytes.
package agentbin
