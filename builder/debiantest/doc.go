// Package debiantest fetches the Debian packages that the tests of ulp build
// work on: source trees (`apt-get source PKG=VERSION`, Debian's patches
// applied) and the files of binary packages (`apt-get download` and
// `dpkg-deb -x`, never installed over the system's own), into a cache under
// the build folder ($ULP_BUILD_DIR/debian-cache) that later runs reuse.
//
// The deb-src entries apt needs for sources are added by `make deb-src`
// (part of `make deps`); a test that needs them requires testenv.DebSrc.
package debiantest
