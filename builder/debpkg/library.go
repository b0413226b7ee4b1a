package debpkg

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"ulp/livepatch/container"
	"ulp/livepatch/elfsym"
)

// Library is the Debian package a container's target came from.
type Library struct {
	Package string // binary package, e.g. libssl3 (no arch qualifier)
	Version string // its version, e.g. 3.0.17-1~deb12u2
	// Source is the source package (openssl), when known; the default
	// package name is derived from it.
	Source string
	// Path is the installed file whose build-id is the target's, when the
	// library was found installed.
	Path string
}

// ErrNotInstalled: no installed package holds a file with the target's
// name and build-id.
var ErrNotInstalled = errors.New("no installed package holds the target library")

// maxQueryOutput bounds what is read from one dpkg-query run.
const maxQueryOutput = 4 << 20

// FindLibrary returns the installed package that holds target: a file
// named target.Name (as `dpkg -S '*/NAME'` lists them) whose GNU build-id
// is target.BuildID, and that package's version and source package.
func FindLibrary(ctx context.Context, target container.Target) (*Library, error) {
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	out, err := dpkgQuery(ctx, "-S", "*/"+target.Name)
	if err != nil {
		// dpkg-query -S exits 1 when no package holds a match.
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 {
			return nil, fmt.Errorf("%w %s (build-id %x)", ErrNotInstalled, target.Name, target.BuildID)
		}
		return nil, err
	}
	for line := range strings.Lines(out) {
		pkgs, path, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || strings.HasPrefix(pkgs, "diversion by ") || filepath.Base(path) != target.Name || strings.Contains(pkgs, ", ") {
			continue
		}
		id, err := fileBuildID(path)
		if err != nil || !bytes.Equal(id, target.BuildID) {
			continue
		}
		fields, err := dpkgQuery(ctx, "-W", "-f", "${Version}\t${source:Package}", pkgs)
		if err != nil {
			return nil, err
		}
		version, source, _ := strings.Cut(fields, "\t")
		lib := &Library{Package: pkgs, Version: version, Source: source, Path: path}
		lib.Package, _, _ = strings.Cut(lib.Package, ":")
		if err := CheckName(lib.Package); err != nil {
			return nil, fmt.Errorf("dpkg-query: %w", err)
		}
		if err := CheckVersion(lib.Version); err != nil {
			return nil, fmt.Errorf("dpkg-query %s: %w", pkgs, err)
		}
		if CheckName(lib.Source) != nil {
			lib.Source = ""
		}
		return lib, nil
	}
	return nil, fmt.Errorf("%w %s with build-id %x", ErrNotInstalled, target.Name, target.BuildID)
}

// maxBuildID bounds a target's build-id (GNU ld writes 16 or 20 bytes; it
// names a virtual package).
const maxBuildID = 64

// checkTarget checks the target's name and that it has a build-id.
func checkTarget(target container.Target) error {
	if err := checkFile("target library", target.Name); err != nil {
		return err
	}
	if len(target.BuildID) == 0 || len(target.BuildID) > maxBuildID {
		return fmt.Errorf("target %s: build-id of %d bytes, want 1 to %d", target.Name, len(target.BuildID), maxBuildID)
	}
	return nil
}

// dpkgQuery runs dpkg-query with args and returns its standard output.
func dpkgQuery(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "dpkg-query", args...)
}

// run runs the command name with args and returns its standard output (at
// most maxQueryOutput bytes).
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	b, rerr := io.ReadAll(io.LimitReader(stdout, maxQueryOutput+1))
	if len(b) > maxQueryOutput {
		cmd.Process.Kill()
		cmd.Wait()
		return "", fmt.Errorf("%s %s: more than %d bytes of output", name, strings.Join(args, " "), maxQueryOutput)
	}
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		return "", fmt.Errorf("%s %s: %w: %.200q", name, strings.Join(args, " "), err, msg)
	}
	if rerr != nil {
		return "", rerr
	}
	return string(b), nil
}

// fileBuildID returns the GNU build-id of the ELF file at path.
func fileBuildID(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, err
	}
	return elfsym.BuildID(ef)
}

// sortedLibraries returns the distinct libraries of libs, by package.
func sortedLibraries(libs []*Library) []*Library {
	out := slices.Clone(libs)
	slices.SortFunc(out, func(a, b *Library) int { return strings.Compare(a.Package, b.Package) })
	return slices.CompactFunc(out, func(a, b *Library) bool { return a.Package == b.Package && a.Version == b.Version })
}

// maxDebFile bounds one file read out of a library package.
const maxDebFile = 1 << 30

// FindInDeb returns the package of the .deb file deb (as dpkg-deb -f
// reads its control fields) when it holds target: a file named
// target.Name (or a symlink of that name to a file of the package) whose
// GNU build-id is target.BuildID. This is how containers built against an
// extracted package, not the installed one, get their dependency.
func FindInDeb(ctx context.Context, deb string, target container.Target) (*Library, error) {
	if err := checkTarget(target); err != nil {
		return nil, err
	}
	fields, err := debFields(ctx, deb)
	if err != nil {
		return nil, err
	}
	lib := &Library{Package: fields["Package"], Version: fields["Version"], Source: fields["Source"]}
	lib.Source, _, _ = strings.Cut(lib.Source, " ") // "openssl (3.0.17-1)" when the versions differ
	if err := CheckName(lib.Package); err != nil {
		return nil, fmt.Errorf("%s: %w", deb, err)
	}
	if err := CheckVersion(lib.Version); err != nil {
		return nil, fmt.Errorf("%s: %w", deb, err)
	}
	if CheckName(lib.Source) != nil {
		lib.Source = ""
	}
	path, err := debFileWithBuildID(ctx, deb, target)
	if err != nil {
		return nil, err
	}
	lib.Path = path
	return lib, nil
}

// debFields returns the control fields of a .deb that FindInDeb uses.
func debFields(ctx context.Context, deb string) (map[string]string, error) {
	out, err := run(ctx, "dpkg-deb", "-f", deb, "Package", "Version", "Source")
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ": "); ok {
			fields[k] = v
		}
	}
	return fields, nil
}

// debFileWithBuildID reads the data of the .deb (dpkg-deb --fsys-tarfile)
// and returns the path of the file named target.Name whose build-id is
// target's.
func debFileWithBuildID(ctx context.Context, deb string, target container.Target) (string, error) {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("dpkg-deb: %w", err)
	}
	fail := func(err error) (string, error) {
		cmd.Process.Kill()
		cmd.Wait()
		return "", err
	}
	ids := map[string][]byte{}   // build-ids of the candidate files, by path
	links := map[string]string{} // symlinks named target.Name, by path
	tr := tar.NewReader(stdout)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("%s: %w: %.200q", deb, err, stderr.String()))
		}
		name := path.Clean("/" + h.Name)
		switch {
		case h.Typeflag == tar.TypeSymlink && path.Base(name) == target.Name:
			link := h.Linkname
			if !path.IsAbs(link) {
				link = path.Join(path.Dir(name), link)
			}
			links[name] = path.Clean(link)
		case h.Typeflag == tar.TypeReg && strings.HasPrefix(path.Base(name), target.Name) && h.Size <= maxDebFile:
			b, err := io.ReadAll(io.LimitReader(tr, maxDebFile))
			if err != nil {
				return fail(fmt.Errorf("%s: %s: %w", deb, name, err))
			}
			if ef, err := elf.NewFile(bytes.NewReader(b)); err == nil {
				if id, err := elfsym.BuildID(ef); err == nil {
					ids[name] = id
				}
			}
		}
	}
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %.200q", deb, err, stderr.String())
	}
	for name, id := range ids {
		if path.Base(name) == target.Name && bytes.Equal(id, target.BuildID) {
			return name, nil
		}
	}
	for name, link := range links {
		if bytes.Equal(ids[link], target.BuildID) {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w: %s holds no %s with build-id %x", ErrNotInDeb, deb, target.Name, target.BuildID)
}

// ErrNotInDeb: a library package file holds no file with the target's
// name and build-id.
var ErrNotInDeb = errors.New("not the package the containers were built for")
