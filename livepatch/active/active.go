package active

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"ulp/internal/atomicfile"
	"ulp/livepatch/container"
	"ulp/livepatch/sign"
)

// DefaultDir is the patch-on-start folder when LIBPULP_ACTIVE_DIR is unset.
const DefaultDir = "/var/lib/ulp/active"

// EnvDir names the environment variable that overrides DefaultDir, for the
// agent and the runtime alike.
const EnvDir = "LIBPULP_ACTIVE_DIR"

// Dir returns the patch-on-start folder: $LIBPULP_ACTIVE_DIR or DefaultDir.
func Dir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	return DefaultDir
}

// ErrUnsafe: the folder is not owned by root or the caller, or group or
// others may write it; the runtime would ignore it.
var ErrUnsafe = errors.New("unsafe patch-on-start folder")

// prepare creates dir (0755, with its parents) when missing and checks that
// the runtime will trust it.
func prepare(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create patch-on-start folder: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := sign.CheckSafe(fi); err != nil {
		return fmt.Errorf("%w %s: %w", ErrUnsafe, dir, err)
	}
	return nil
}

// Install copies the container src, read from in (the file the caller
// opened and checked, not src opened again), into dir under src's base
// name, atomically (a temporary dot file in dir, mode 0644, fsync, rename,
// fsync of dir), replacing a file of that name. It returns the new path.
func Install(dir, src string, in io.Reader) (string, error) {
	if err := prepare(dir); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	}); err != nil {
		return "", fmt.Errorf("install %s: %w", src, err)
	}
	return dst, nil
}

// Remove deletes from dir every container for which drop returns true and
// returns their paths. Files that are not valid containers are left alone.
// A missing dir holds nothing.
func Remove(dir string, drop func(*container.File) bool) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read patch-on-start folder: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".so") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		c, err := container.Open(p)
		if err != nil || !drop(c) {
			continue
		}
		if err := atomicfile.Remove(p); err != nil {
			return out, fmt.Errorf("remove %s: %w", p, err)
		}
		out = append(out, p)
	}
	return out, nil
}
