package debpkg

import (
	"fmt"
	"strings"
)

// shellQuote quotes s as one word of a POSIX shell: inside single quotes
// every byte is literal, and each single quote closes the quotes, is
// escaped with a backslash and reopens them.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// scriptHead is the start of both maintainer scripts: the package name and
// a function that runs ulp and reports, without failing the script, a
// status other than 0.
const scriptHead = `#!/bin/sh
# %[1]s of %[2]s, written by ulp deb.
%[3]s
set -e
pkg=%[4]s

# run runs ulp with the arguments: its lines show each process's result. A
# process that could not be patched, or any other failure of ulp, is
# reported here and does not fail the package operation.
run() {
	rc=0
	ulp "$@" || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "$pkg: ulp $1 exited with status $rc (see above); the package operation goes on: ulp patches shows what each process runs" >&2
	fi
}

`

// pinnedFunc is the postinst's check that each library package is
// installed at the version the livepatches were built for.
const pinnedFunc = `# pinned PKG VERSION: whether PKG is installed at VERSION, the version the
# livepatches were built for. After an upgrade of the library they apply to
# no process started since, and replacing the patches on the library would
# take out those of the package built for the new version.
pinned() {
	dpkg-query -W -f '${db:Status-Abbrev}${Version} ${Architecture}\n' "$1" 2>/dev/null |
		grep -qxF -e "ii $2 amd64" -e "ii $2 all"
}

`

// deactivateFunc removes the package's containers from the patch-on-start
// folder, and from there only.
const deactivateFunc = `# deactivate FILE...: remove the package's containers from the patch-on-start
# folder (processes started later do not get them); the running processes
# keep the patches they have.
deactivate() {
	active=${LIBPULP_ACTIVE_DIR:-/var/lib/ulp/active}
	for f; do
		if [ -f "$active/$f" ]; then
			rm -f "$active/$f" && echo "deactivated $active/$f"
		fi
	done
}

`

// postinst returns the postinst script. On configure (a new installation or
// an upgrade), and when a removal is abandoned, each library's containers
// replace the patches on that library in every running process and in the
// patch-on-start folder (--revert-all=LIB: the patches of an older version
// of the package go in the same stop), unless a package of pins is not
// installed at its version. When dpkg triggers it because a library file of
// pins changed (the library was upgraded), it removes the containers from the
// patch-on-start folder, or applies them again if the library is back at
// the version they were built for. files are the containers' base names.
func postinst(name string, libs []string, pins []*Library, files []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, scriptHead, "postinst", name, `# On configure, apply the package's livepatches to every running process with
# the runtime and install them into the patch-on-start folder; for each
# target library, --revert-all=LIB replaces the patches on it (those of an
# older version of this package) in one stop of each process.`, shellQuote(name))
	apply := &strings.Builder{}
	for _, lib := range libs {
		fmt.Fprintf(apply, "		run trigger --activate --revert-all=%s %s\n", shellQuote(lib), shellQuote(libDir(name, lib)+"/*.so"))
	}
	if len(pins) == 0 {
		b.WriteString("case \"$1\" in\nconfigure|abort-remove|abort-deconfigure)\n")
		b.WriteString(strings.ReplaceAll(apply.String(), "\t\t", "\t"))
		b.WriteString("\t;;\nesac\nexit 0\n")
		return b.String()
	}
	b.WriteString(pinnedFunc)
	b.WriteString(deactivateFunc)
	var cond, want []string
	for _, l := range pins {
		cond = append(cond, fmt.Sprintf("pinned %s %s", shellQuote(l.Package), shellQuote(l.Version)))
		want = append(want, l.Package+" "+l.Version)
	}
	quoted := make([]string, len(files))
	for i, f := range files {
		quoted[i] = shellQuote(f)
	}
	fmt.Fprintf(&b, `built_for=%s

case "$1" in
configure|abort-remove|abort-deconfigure|triggered)
	if %s; then
%s	elif [ "$1" = triggered ]; then
		echo "$pkg: $built_for is no longer installed: processes started from now on do not get its livepatches, the running ones keep them" >&2
		deactivate %s
	else
		echo "$pkg: $built_for is not installed: its livepatches are not applied (install the livepatch package built for the installed version)" >&2
	fi
	;;
esac
exit 0
`, shellQuote(strings.Join(want, ", ")), strings.Join(cond, " && "), apply.String(), strings.Join(quoted, " "))
	return b.String()
}

// prerm returns the prerm script: on removal it reverts the package's
// livepatches (by patch id) in every running process and removes them from
// the patch-on-start folder. An upgrade keeps them: the new version's
// postinst replaces them.
func prerm(name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, scriptHead, "prerm", name, `# On removal, revert the package's livepatches in every running process and
# remove them from the patch-on-start folder. On upgrade nothing happens here:
# the new version's postinst replaces them in one stop.`, shellQuote(name))
	b.WriteString("case \"$1\" in\nremove|deconfigure)\n")
	fmt.Fprintf(&b, "\trun trigger --activate --revert --recursive %s\n", shellQuote(pkgDir(name)+"/*.so"))
	b.WriteString("\t;;\nesac\nexit 0\n")
	return b.String()
}
