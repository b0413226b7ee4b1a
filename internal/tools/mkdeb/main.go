package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"ulp/builder/debpkg"
	"ulp/internal/atomicfile"
)

// control is the package's control file; mkdeb adds Version.
var control = debpkg.Control{
	Fields: [][2]string{
		{"Package", "ulp"},
		{"Section", "admin"},
		{"Priority", "optional"},
		{"Architecture", debpkg.Arch},
		{"Maintainer", "ulp maintainers <ulp@localhost>"},
		{"Depends", "libc6"},
	},
	Description: "User-space live patching for Linux.\n" +
		"libpulp.so.0, preloaded into processes, lets the ulp agent apply and revert\n" +
		"livepatches to running programs without restarting them; ulpfleet rolls\n" +
		"them out to many hosts over SSH. `ulp preload enable` preloads the runtime\n" +
		"into every program started afterwards.\n",
}

// triggers runs ldconfig once dpkg is done, for the runtime in the
// library folder.
const triggers = "activate-noawait ldconfig\n"

func main() {
	var o options
	flag.StringVar(&o.prerm, "prerm", "packaging/prerm.sh", "the prerm script `FILE`")
	flag.StringVar(&o.root, "root", "", "the installed tree `DIR` (make install DESTDIR=DIR PREFIX=/usr)")
	flag.StringVar(&o.version, "version", "", "package `VERSION`")
	flag.StringVar(&o.out, "o", "", "write the package to `FILE`")
	flag.Parse()
	if o.root == "" || o.version == "" || o.out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: mkdeb [-prerm FILE] -root DIR -version VERSION -o FILE")
		os.Exit(2)
	}
	if err := build(o); err != nil {
		fmt.Fprintf(os.Stderr, "mkdeb: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	prerm, root, version, out string
}

func build(o options) error {
	if err := debpkg.CheckVersion(o.version); err != nil {
		return err
	}
	prerm, err := os.ReadFile(o.prerm)
	if err != nil {
		return err
	}
	data, err := tree(o.root)
	if err != nil {
		return err
	}
	mtime, err := debpkg.SourceDate()
	if err != nil {
		return err
	}
	c := control
	c.Fields = append([][2]string{c.Fields[0], {"Version", o.version}}, c.Fields[1:]...)
	ctl := []debpkg.File{{Name: "prerm", Mode: 0o755, Data: prerm}, {Name: "triggers", Mode: 0o644, Data: []byte(triggers)}}
	return atomicfile.Write(o.out, 0o644, func(w io.Writer) error { return debpkg.WriteDeb(w, c, ctl, data, mtime) })
}

// tree reads the regular files under root as the package's data; anything
// else but a folder is refused (make install writes no link).
func tree(root string) ([]debpkg.File, error) {
	var files []debpkg.File
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file (%v)", p, d.Type())
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		files = append(files, debpkg.File{Name: "/" + filepath.ToSlash(rel), Mode: fi.Mode().Perm(), Data: b})
		return nil
	})
	return files, err
}
