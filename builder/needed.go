package builder

import (
	"debug/elf"
	"os"
	"path/filepath"

	"ulp/livepatch/elfsym"
)

// neededLibs returns the linker arguments for the libraries the target
// itself needs (DT_NEEDED), so that the livepatch links under -z defs when
// its code calls into them as the library's code does (libssl.so.3's fixes
// call libcrypto.so.3's ERR_new): the file beside the target when there is
// one (the libraries of an extracted .deb come as a set), else -l:NAME from
// the system's library path.
func neededLibs(target string) ([]string, error) {
	f, err := elfsym.OpenStd(target)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	var args []string
	for _, n := range names {
		if n != filepath.Base(n) || n == "" || n[0] == '-' {
			continue // not a plain file name: nothing the linker should be given
		}
		if p := filepath.Join(filepath.Dir(target), n); p != target {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				args = append(args, p)
				continue
			}
		}
		args = append(args, "-l:"+n)
	}
	return args, nil
}

// linkableName reports whether the livepatch's link can bind sym
// dynamically: the target or one of the libraries it needs defines it in its
// dynamic symbol table.
func (b *build) linkableName(sym string) bool {
	if b.linkable == nil {
		b.linkable = linkableNames(b.lib.Path)
	}
	return b.linkable[sym]
}

// linkableNames returns the names defined in the dynamic symbol tables of
// target and of the libraries it needs (found beside it, else in the
// multiarch library folders). A library that cannot be read adds nothing.
func linkableNames(target string) map[string]bool {
	names := make(map[string]bool)
	add := func(path string) []string {
		f, err := elfsym.OpenStd(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		syms, _ := f.DynamicSymbols()
		for _, s := range syms {
			if s.Section != elf.SHN_UNDEF {
				names[s.Name] = true
			}
		}
		needed, _ := f.ImportedLibraries()
		return needed
	}
	for _, n := range add(target) {
		if n != filepath.Base(n) {
			continue
		}
		for _, dir := range []string{filepath.Dir(target), "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"} {
			if p := filepath.Join(dir, n); p != target {
				if _, err := os.Stat(p); err == nil {
					add(p)
					break
				}
			}
		}
	}
	return names
}
