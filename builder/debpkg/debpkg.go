package debpkg

import (
	"bytes"
	"cmp"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"ulp/internal/atomicfile"
	"ulp/livepatch/container"
)

// Root is the folder under which a livepatch package installs its
// containers: Root/PACKAGE/LIBRARY/PACKAGE_CONTAINER.so.
const Root = "/usr/lib/ulp/livepatches"

// Arch is the Debian architecture of the packages (the containers are
// x86-64 ELF objects).
const Arch = "amd64"

// ErrWrite tags the errors of writing the package, as opposed to those of
// its inputs.
var ErrWrite = errors.New("write package")

// Options say what Build writes.
type Options struct {
	// Name is the package name; empty derives
	// ulp-livepatch-SOURCE-VERSION from the first container's library.
	Name string
	// Version is the package's version; empty is "1".
	Version string
	// Maintainer is "Full Name <address>"; empty is
	// "$DEBFULLNAME <$DEBEMAIL>", or "ulp deb <root@localhost>".
	Maintainer string
	// Libraries, when not empty, are the packages the containers were
	// built for, instead of those found installed with each target's
	// build-id. The package depends on each at that version or later (an
	// exact pin would keep apt-get upgrade from installing the library's
	// own fix), and its postinst applies nothing unless each is installed
	// at exactly that version.
	Libraries []Library
	// Debs, when not empty, are the library package files (.deb) the
	// containers were built against: each container's target must be a
	// file of one of them with the target's build-id, and that package at
	// its version is the dependency.
	Debs []string
	// Unpinned leaves out the dependency on the libraries' packages, for a
	// target that no package installed (then Name is needed).
	Unpinned bool
	// Out is the .deb to write; empty is NAME_VERSION_amd64.deb in the
	// current folder.
	Out string
}

// Container is one container of a package.
type Container struct {
	Source string // the input file
	Path   string // where the package installs it
	Target container.Target
	ID     container.ID
	Labels []string
}

// Package describes a written .deb.
type Package struct {
	Out        string
	Name       string
	Version    string
	Depends    []string
	Provides   []string // the virtual packages it conflicts with too
	Containers []Container
}

// Build reads the containers at paths and writes a Debian package that
// installs them under Root/NAME/ and whose maintainer scripts apply them
// with `ulp trigger --activate` (and revert them on removal). The .deb is
// written atomically.
func Build(ctx context.Context, paths []string, o Options) (*Package, error) {
	if len(paths) == 0 {
		return nil, errors.New("no container")
	}
	var (
		blobs [][]byte
		cs    []Container
	)
	for _, p := range paths {
		b, c, err := readContainer(p)
		if err != nil {
			return nil, err
		}
		for _, prev := range cs {
			if filepath.Base(prev.Source) == filepath.Base(p) {
				return nil, fmt.Errorf("%s and %s have the same file name", prev.Source, p)
			}
			if prev.ID == c.ID {
				return nil, fmt.Errorf("%s and %s are the same patch (id %s)", prev.Source, p, c.ID)
			}
		}
		blobs = append(blobs, b)
		cs = append(cs, c)
	}
	libs, err := libraries(ctx, cs, o)
	if err != nil {
		return nil, err
	}
	pkg := &Package{Name: o.Name, Version: o.Version, Depends: []string{"ulp"}}
	if pkg.Version == "" {
		pkg.Version = "1"
	}
	if pkg.Name == "" {
		if len(libs) == 0 {
			return nil, errors.New("no package name: give one (the target libraries are not from a package)")
		}
		src := cmp.Or(libs[0].Source, libs[0].Package)
		pkg.Name = "ulp-livepatch-" + src + "-" + nameComponent(libs[0].Version)
	}
	if err := CheckName(pkg.Name); err != nil {
		return nil, err
	}
	if err := CheckVersion(pkg.Version); err != nil {
		return nil, err
	}
	maint, err := maintainer(o.Maintainer)
	if err != nil {
		return nil, err
	}
	libs = sortedLibraries(libs)
	for _, l := range libs {
		pkg.Depends = append(pkg.Depends, fmt.Sprintf("%s (>= %s)", l.Package, l.Version))
	}
	var targets []string
	for i := range cs {
		c := &cs[i]
		c.Path = path.Join(libDir(pkg.Name, c.Target.Name), pkg.Name+"_"+filepath.Base(c.Source))
		if err := checkFile("installed container name", path.Base(c.Path)); err != nil {
			return nil, err
		}
		if !slices.Contains(targets, c.Target.Name) {
			targets = append(targets, c.Target.Name)
		}
		v := fmt.Sprintf("ulp-livepatch-buildid-%x", c.Target.BuildID)
		if !slices.Contains(pkg.Provides, v) {
			pkg.Provides = append(pkg.Provides, v)
		}
	}
	pkg.Containers = cs
	pkg.Out = o.Out
	if pkg.Out == "" {
		_, v, ok := strings.Cut(pkg.Version, ":")
		if !ok {
			v = pkg.Version
		}
		pkg.Out = fmt.Sprintf("%s_%s_%s.deb", pkg.Name, v, Arch)
	}
	if err := write(pkg, maint, libs, targets, blobs); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrWrite, pkg.Out, err)
	}
	return pkg, nil
}

// readContainer reads the container at p once (its bytes go into the
// package as read and checked here).
func readContainer(p string) ([]byte, Container, error) {
	c := Container{Source: p}
	f, _, err := container.OpenFile(p) // a regular file of at most container.MaxFile bytes
	if err != nil {
		return nil, c, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, container.MaxFile+1))
	if err != nil {
		return nil, c, fmt.Errorf("read %s: %w", p, err)
	}
	if len(b) > container.MaxFile {
		return nil, c, fmt.Errorf("%s: %w: more than %d bytes", p, container.ErrTooLarge, container.MaxFile)
	}
	if err := checkFile("container file name", filepath.Base(p)); err != nil || !strings.HasSuffix(p, ".so") {
		return nil, c, fmt.Errorf("%s: the file name must end in .so and be letters, digits, '.', '_', '+' and '-'", p)
	}
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, c, fmt.Errorf("%s: not an ELF file: %w", p, err)
	}
	if ef.Machine != elf.EM_X86_64 || ef.Class != elf.ELFCLASS64 {
		return nil, c, fmt.Errorf("%s: not an x86-64 object (%v)", p, ef.Machine)
	}
	cf, err := container.Read(bytes.NewReader(b))
	if err != nil {
		return nil, c, fmt.Errorf("%s: %w", p, err)
	}
	if err := checkTarget(cf.Apply.Target); err != nil {
		return nil, c, fmt.Errorf("%s: %w", p, err)
	}
	c.Target, c.ID, c.Labels = cf.Apply.Target, cf.Apply.ID, cf.Apply.Labels
	return b, c, nil
}

// libraries returns the packages the containers were built for: o's, or
// the installed one of each target; none when unpinned.
func libraries(ctx context.Context, cs []Container, o Options) ([]*Library, error) {
	switch {
	case o.Unpinned && (len(o.Libraries) != 0 || len(o.Debs) != 0),
		len(o.Libraries) != 0 && len(o.Debs) != 0:
		return nil, errors.New("unpinned, library packages and library package files are mutually exclusive")
	case o.Unpinned:
		return nil, nil
	}
	var libs []*Library
	for _, l := range o.Libraries {
		if err := CheckName(l.Package); err != nil {
			return nil, err
		}
		if err := CheckVersion(l.Version); err != nil {
			return nil, err
		}
		if l.Source != "" {
			if err := CheckName(l.Source); err != nil {
				return nil, err
			}
		}
		libs = append(libs, &l)
	}
	if len(libs) > 0 {
		return libs, nil
	}
	seen := map[string]*Library{}
	for _, c := range cs {
		key := fmt.Sprintf("%s %x", c.Target.Name, c.Target.BuildID)
		if seen[key] != nil {
			continue
		}
		l, err := findLibrary(ctx, c.Target, o.Debs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Source, err)
		}
		seen[key] = l
		libs = append(libs, l)
	}
	return libs, nil
}

// findLibrary returns the package of target: the first of debs that holds
// it, or without debs the installed one.
func findLibrary(ctx context.Context, target container.Target, debs []string) (*Library, error) {
	if len(debs) == 0 {
		return FindLibrary(ctx, target)
	}
	var errs []error
	for _, deb := range debs {
		l, err := FindInDeb(ctx, deb, target)
		if err == nil {
			return l, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// maintainer returns m, or the default from DEBFULLNAME and DEBEMAIL (as
// dch reads them), checked.
func maintainer(m string) (string, error) {
	if m == "" {
		m = "ulp deb <root@localhost>"
		if name, mail := os.Getenv("DEBFULLNAME"), os.Getenv("DEBEMAIL"); name != "" && mail != "" {
			m = name + " <" + mail + ">"
		}
	}
	return m, CheckMaintainer(m)
}

// pkgDir is the package's own folder; libDir the one of its containers for
// library lib.
func pkgDir(name string) string      { return path.Join(Root, name) }
func libDir(name, lib string) string { return path.Join(pkgDir(name), lib) }

// description returns the control file's description: the synopsis, and
// one paragraph line a container with its target and bug labels.
func description(pkg *Package, libs []*Library) string {
	var labels []string
	for _, c := range pkg.Containers {
		for _, l := range c.Labels {
			if !slices.Contains(labels, l) {
				labels = append(labels, l)
			}
		}
	}
	var b strings.Builder
	what := "livepatches"
	if len(libs) > 0 {
		what += fmt.Sprintf(" for %s %s", libs[0].Package, libs[0].Version)
	}
	if len(labels) > 0 {
		what += ": " + strings.Join(labels, ", ")
	}
	if len(what) > 72 {
		cut := strings.LastIndex(what[:69], " ")
		what = what[:max(cut, 0)] + " ..."
	}
	b.WriteString(what + "\n")
	b.WriteString("Applies its livepatch containers with ulp to the running processes that\n" +
		"preload libpulp.so.0 and to every process started later (the patch-on-start\n" +
		"folder), replacing older livepatches of the same libraries; reverts them on\n" +
		"removal.\n\n")
	for _, c := range pkg.Containers {
		line := fmt.Sprintf("%s: %s (build-id %x)", path.Base(c.Path), c.Target.Name, c.Target.BuildID)
		if len(c.Labels) > 0 {
			line += ": " + strings.Join(c.Labels, ", ")
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// write packs the containers and the maintainer scripts into pkg.Out,
// atomically. Its time stamps are SOURCE_DATE_EPOCH's when that is set, so
// the same inputs give the same bytes.
func write(pkg *Package, maint string, libs []*Library, targets []string, blobs [][]byte) error {
	var data []File
	var names []string
	for i, c := range pkg.Containers {
		data = append(data, File{c.Path, 0o644, blobs[i]})
		names = append(names, path.Base(c.Path))
	}
	ctl := []File{
		{"postinst", 0o755, []byte(postinst(pkg.Name, targets, libs, names))},
		{"prerm", 0o755, []byte(prerm(pkg.Name))},
	}
	var triggers strings.Builder
	for _, l := range libs {
		if l.Path != "" {
			if err := checkTriggerPath(l.Path); err != nil {
				return err
			}
			fmt.Fprintf(&triggers, "interest-noawait %s\n", l.Path)
		}
	}
	if triggers.Len() > 0 {
		ctl = append(ctl, File{"triggers", 0o644, []byte(triggers.String())})
	}
	provides := strings.Join(pkg.Provides, ", ")
	c := Control{Fields: [][2]string{
		{"Package", pkg.Name}, {"Version", pkg.Version}, {"Architecture", Arch}, {"Maintainer", maint},
		{"Depends", strings.Join(pkg.Depends, ", ")},
		{"Provides", provides}, {"Conflicts", provides}, {"Replaces", provides},
		{"Section", "admin"}, {"Priority", "optional"},
	}, Description: description(pkg, libs)}
	mtime, err := SourceDate()
	if err != nil {
		return err
	}
	return atomicfile.Write(pkg.Out, 0o644, func(w io.Writer) error { return WriteDeb(w, c, ctl, data, mtime) })
}
