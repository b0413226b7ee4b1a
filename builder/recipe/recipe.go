package recipe

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Command is how a package's build runs the compiler on one translation unit.
type Command struct {
	Dir  string   // working directory of the compiler
	Args []string // argv: compiler first, then every flag and the source file, as the package's build passes them; without -o and dependency-output flags (-MD, -MMD, -MF F, -MT T, -MQ T)
}

// Recipe knows how one source tree compiles its translation units.
type Recipe interface {
	// Name names the recipe ("openssl", "glibc", "compile-commands").
	Name() string
	// Root is the source tree the recipe was made for; Command refers to the tree only through paths under Root (absolute, or relative to Dir).
	Root() string
	// Command returns how the package compiles file (a path relative to Root, as a -p1 patch names it), configuring the tree first if needed (once, cached).
	Command(ctx context.Context, file string) (Command, error)
}

// maker is one recipe of a known package.
type maker struct {
	name   string
	detect func(root string) bool
	open   func(root, target string) (Recipe, error)
}

// makers are the package recipes; each recipe's file adds itself in init.
var makers []maker

// register adds a package recipe: detect tells its trees apart, open makes
// the recipe for one and the library to patch (a tree may build several
// libraries from one file with different flags, as OpenSSL's libcrypto and
// libssl do).
func register(name string, detect func(root string) bool, open func(root, target string) (Recipe, error)) {
	makers = append(makers, maker{name: name, detect: detect, open: open})
}

// ErrUnknown means no recipe of that name exists, or "auto" recognised no
// package.
var ErrUnknown = errors.New("unknown recipe")

// Open returns the recipe called name ("openssl", "glibc", ...) for the
// tree at root and the library target (its path or file name) built from
// it; "auto" picks the first whose detection accepts the tree.
func Open(name, root, target string) (Recipe, error) {
	for _, m := range makers {
		if m.name == name || (name == "auto" && m.detect(root)) {
			return m.open(root, target)
		}
	}
	names := make([]string, 0, len(makers))
	for _, m := range makers {
		names = append(names, m.name)
	}
	if name == "auto" {
		return nil, fmt.Errorf("%w: no recipe recognises %s (known: %s; or give --compile-commands)", ErrUnknown, root, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknown, name, strings.Join(names, ", "))
}
