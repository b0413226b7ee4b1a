package debpkg

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// MaxName bounds package names and the file names derived from them.
const MaxName = 200

var (
	// Debian policy 5.6.1: lower case letters, digits, + - . and at least
	// two characters, starting with a letter or digit.
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// A target library or container base name that is safe as a file
	// name, in a shell word and in a control field.
	fileRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	// Debian policy 5.6.12, upstream part: starts with a digit; - only
	// when there is a revision (checked by the caller); no colon.
	upstreamRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~-]*$`)
	revisionRE = regexp.MustCompile(`^[A-Za-z0-9.+~]+$`)
	epochRE    = regexp.MustCompile(`^[0-9]+$`)
	// An absolute path of plain file names, for a dpkg trigger.
	triggerPathRE = regexp.MustCompile(`^(/[A-Za-z0-9][A-Za-z0-9._+-]*)+$`)
	// "Full Name <address>", printable, no angle brackets in the name.
	maintainerRE = regexp.MustCompile(`^[^<>\x00-\x1f\x7f]+ <[^<>\s\x00-\x1f\x7f]+@[^<>\s\x00-\x1f\x7f]+>$`)
)

// CheckName reports whether name is a valid Debian package name.
func CheckName(name string) error {
	switch {
	case len(name) > MaxName:
		return fmt.Errorf("package name %q: %d bytes, at most %d", name[:MaxName]+"...", len(name), MaxName)
	case !packageRE.MatchString(name):
		return fmt.Errorf("package name %q: want lower case letters, digits, '+', '-' and '.', at least two, starting with a letter or digit", name)
	}
	return nil
}

// CheckVersion reports whether v is a valid Debian version,
// [EPOCH:]UPSTREAM[-REVISION]. It is stricter than dpkg in one point: the
// upstream part holds no colon.
func CheckVersion(v string) error {
	bad := func(why string) error { return fmt.Errorf("version %q: %s", v, why) }
	if len(v) > MaxName {
		return bad(fmt.Sprintf("%d bytes, at most %d", len(v), MaxName))
	}
	rest := v
	if epoch, after, ok := strings.Cut(v, ":"); ok {
		if !epochRE.MatchString(epoch) {
			return bad("the epoch before ':' must be a number")
		}
		rest = after
	}
	upstream := rest
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		upstream = rest[:i]
		if !revisionRE.MatchString(rest[i+1:]) {
			return bad("the revision after the last '-' must be letters, digits, '.', '+' or '~'")
		}
	}
	if !upstreamRE.MatchString(upstream) {
		return bad("the upstream version must start with a digit and hold only letters, digits, '.', '+', '~' and '-'")
	}
	return nil
}

// CheckMaintainer reports whether m has the form "Full Name <address>".
func CheckMaintainer(m string) error {
	if len(m) > MaxName || !maintainerRE.MatchString(m) {
		return fmt.Errorf("maintainer %q: want \"Full Name <address>\" on one line", m)
	}
	return nil
}

// checkFile reports whether name (a target library or a container's base
// name, read from the inputs) is a plain file name the package may use in
// paths, shell words and control fields.
func checkFile(what, name string) error {
	switch {
	case len(name) > MaxName:
		return fmt.Errorf("%s %q...: %d bytes, at most %d", what, name[:MaxName], len(name), MaxName)
	case !fileRE.MatchString(name):
		return fmt.Errorf("%s %q: want letters, digits, '.', '_', '+' and '-', starting with a letter or digit", what, name)
	}
	return nil
}

// nameComponent turns a version (or any string) into characters a
// package name may hold: lower case, and '-' for every other character.
func nameComponent(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '+', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// ParseDependency splits "PKG=VERSION" (the --depends-on flag) and checks
// both parts; an arch qualifier (libssl3:amd64) is dropped.
func ParseDependency(s string) (pkg, version string, err error) {
	pkg, version, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", errors.New("want PACKAGE=VERSION, e.g. libssl3=3.0.17-1~deb12u2")
	}
	pkg, _, _ = strings.Cut(pkg, ":")
	if err := CheckName(pkg); err != nil {
		return "", "", err
	}
	if err := CheckVersion(version); err != nil {
		return "", "", err
	}
	return pkg, version, nil
}

// checkTriggerPath reports whether p (the installed path of a target
// library) may be named in the package's triggers file.
func checkTriggerPath(p string) error {
	if len(p) > 4*MaxName || !triggerPathRE.MatchString(p) || path.Clean(p) != p {
		return fmt.Errorf("library path %q: want an absolute path of letters, digits, '.', '_', '+' and '-'", p)
	}
	return nil
}
