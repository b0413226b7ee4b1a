// Command bench is the benchmark harness that `make bench` runs (after
// `make`): it measures the agent, the runtime and the fleet controller as a
// user meets them, with real processes, and prints a table and writes the
// same figures to build/bench.json.
//
// Each figure is the median, minimum and maximum over repeated runs. The
// sections are:
//
//   - libpulp: ulp and SUSE's libpulp 0.3.17 (prebuilt, -libpulp) side by
//     side in the same run, alternated, a fresh target per sample: apply and
//     revert wall of `trigger -p PID` and the longest stall of a spinning
//     thread, with 1 spinning thread and with 1000 idle threads besides; a
//     whole-host trigger without -p over N processes in a PID namespace of
//     their own; every ulp figure with its ratio to libpulp's;
//   - trigger: wall time of `ulp trigger -p PID` (apply and revert) and the
//     pause the target sees (the largest gap of a thread spinning on the
//     clock), for targets with 1, 8 and 64 threads, with the agent's own
//     --json phases (attach, load, write, detach, pause);
//   - percall: ns per call of a plain function, an unpatched padded one and
//     a padded one patched live, measured inside a running C program;
//   - footprint: VmSize and VmRSS of a small process without and with the
//     runtime preloaded, and after one patch;
//   - container: `ulp packer` and `ulp dump` on a container of 1000
//     functions;
//   - fleet: hosts per second of `ulpfleet apply` at fan-out 1, 8 and 32 on
//     real sshd hosts (remote/remotetest/sshfleet), next to OpenSSH's `ssh
//     HOST true` measured in the same run, and the bytes sent by a first run
//     and by a second run with nothing changed;
//   - host: one `ulp trigger` over a parent and its N forked children (100
//     by default; 1000 and 4000 with -host-procs), apply and revert-all.
//
// The C programs measured are in src/ and are compiled with gcc at run
// time. docs/performance.md records the figures and what they mean.
package main
