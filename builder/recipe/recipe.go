package recipe

import "context"

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
