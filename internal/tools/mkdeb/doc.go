// Command mkdeb builds the ulp Debian package from an installed tree with
// the .deb writer of builder/debpkg: `make deb` installs into a staging
// folder and runs
//
//	go run ./internal/tools/mkdeb -root STAGING -version V -o ulp_V_amd64.deb
//
// The package's control fields and ldconfig trigger are here (main.go), its
// prerm script is packaging/prerm.sh; its files are exactly the staging
// tree's, with their permission bits, owned by root.
package main
