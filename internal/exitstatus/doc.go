// Package exitstatus owns what the two command trees (ulp and ulpfleet)
// share about ending a command: the Error that carries a specific exit
// status up to Run, and Print, which prints a command's error once and
// turns it into the process's exit status. Which error means which status
// stays with each tree (its ExitCode).
package exitstatus
