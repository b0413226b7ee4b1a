// Package testenv is shared test infrastructure: capability checks that skip
// locally but fail in CI, the paths of the artifacts that `make` builds, C
// compiled at test time (CompileC), piped fixture processes reaped at the
// test's end (StartPiped), a self-signed TLS certificate for 127.0.0.1
// (WriteSelfSignedCert), a process's children (Children) and Debian's nginx
// serving TLS from a test's folder (StartNginx).
//
// A test that needs a capability calls Require. When the capability is
// missing the test is skipped, unless ULP_TEST_REQUIRE names it (CI sets
// ULP_TEST_REQUIRE=all), in which case the test fails: a green CI run can
// never mean that the real-process tests did not run.
package testenv
