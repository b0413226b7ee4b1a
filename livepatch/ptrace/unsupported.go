//go:build !(linux && amd64)

package ptrace

// This package supports only linux/amd64: the build fails here with a
// readable name rather than with missing symbols.
import _ "ulp_ptrace_supports_only_linux_amd64"
