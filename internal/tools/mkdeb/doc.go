// Command mkdeb builds the ulp Debian package from an installed tree with
// the nfpm library: `make deb` installs into a staging folder and runs
//
//	go run ./internal/tools/mkdeb -root STAGING -version V -o ulp_V_amd64.deb
//
// The package's metadata, maintainer script and ldconfig trigger are in
// packaging/nfpm.yaml; its files are exactly the staging tree.
package main
