package debpkg

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	if err := checkFile("target library", target.Name); err != nil {
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

// dpkgQuery runs dpkg-query with args and returns its standard output
// (at most maxQueryOutput bytes).
func dpkgQuery(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "dpkg-query", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("dpkg-query: %w", err)
	}
	b, rerr := io.ReadAll(io.LimitReader(stdout, maxQueryOutput+1))
	if len(b) > maxQueryOutput {
		cmd.Process.Kill()
		cmd.Wait()
		return "", fmt.Errorf("dpkg-query %s: more than %d bytes of output", strings.Join(args, " "), maxQueryOutput)
	}
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		return "", fmt.Errorf("dpkg-query %s: %w: %.200q", strings.Join(args, " "), err, msg)
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
