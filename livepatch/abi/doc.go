// Package abi is the Go mirror of libpulp/ulp_abi.h, the contract between the
// runtime (libpulp.so.0, inside a target process) and the ulp agent.
//
// It owns the constants, the byte layout of struct ulp_abi (the block the
// runtime exports as [Symbol]) and of struct ulp_request (what the agent
// writes onto a hijacked thread's stack), and pure encoders and decoders for
// them. It never touches a process: reading and writing target memory is
// livepatch/target's and livepatch/ptrace's job. A test compiles a C probe
// against ulp_abi.h and checks every size, offset and constant here.
package abi
