package builder

import (
	"debug/elf"
	"os"
	"path/filepath"
)

// neededLibs returns the linker arguments for the libraries the target
// itself needs (DT_NEEDED), so that the livepatch links under -z defs when
// its code calls into them as the library's code does (libssl.so.3's fixes
// call libcrypto.so.3's ERR_new): the file beside the target when there is
// one (the libraries of an extracted .deb come as a set), else -l:NAME from
// the system's library path.
func neededLibs(target string) ([]string, error) {
	f, err := elf.Open(target)
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
