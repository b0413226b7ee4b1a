// Package debpkg wraps livepatch containers into a Debian package, so that
// apt (and every tool that drives apt) delivers livepatches to running
// processes, as SUSE's glibc-livepatches and openssl-livepatches packages
// do.
//
// Build reads each container once (target library, build-id, patch id, bug
// labels), finds the installed package that holds the target library with
// that build-id (dpkg-query -S; or the one among given .deb files, read with
// dpkg-deb), and writes a .deb that installs the
// containers under /usr/lib/ulp/livepatches/PACKAGE/LIBRARY/ and depends on
// ulp and on each library package at that version or later (its postinst
// applies nothing unless that exact version is installed). Its postinst runs
// `ulp trigger --activate --revert-all=LIBRARY` on them (every running
// process and the patch-on-start folder, older livepatches of the library
// replaced in one stop); its prerm reverts them on removal; a dpkg trigger
// on the library's file takes them out of the patch-on-start folder when the
// library is upgraded. Neither script fails the package operation because a
// process could not be patched.
//
// The package file is written here (deb.go: deb(5)'s ar archive of
// debian-binary, control.tar.gz and data.tar.gz, every time stamp
// SOURCE_DATE_EPOCH's when set), so the agent links no packaging library;
// WriteDeb is exported for `make deb` (internal/tools/mkdeb), which packs
// the project's own package with it.
//
// Every name and version taken from the inputs is checked against Debian
// policy or a plain file-name alphabet before it reaches a path, a control
// field or a script, and the scripts quote every word.
package debpkg
