package builder

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"ulp/builder/match"
	"ulp/builder/recipe"
	"ulp/builder/udiff"
	"ulp/livepatch/container"
	"ulp/livepatch/dsc"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/packer"
)

// Error classes of Build.
var (
	// ErrRefused means the fix cannot be expressed as a safe livepatch of
	// the library; the error says why. Nothing is written.
	ErrRefused = errors.New("refused")
	// ErrInput means an input is missing or malformed.
	ErrInput = errors.New("invalid input")
)

// Options are the inputs of Build.
type Options struct {
	Target  string        // the stock library (LIB)
	Recipe  recipe.Recipe // how the library's source tree compiles
	Patch   string        // the fix: a unified diff, -p1 against Recipe.Root()
	Out     string        // the container to write
	Comment string        // extra comment lines (-m); labels in it are listed
	// DebugRoot is searched for the library's debuginfo by build-id; empty
	// disables the search.
	DebugRoot string
	// WorkDir, when set, holds the intermediate files and is kept;
	// otherwise a temporary folder is used and removed.
	WorkDir string
	Log     *slog.Logger
}

// Func is one function the container replaces.
type Func struct {
	Name      string
	TU        string // the source file
	OldOffset uint64
}

// Result describes a built container.
type Result struct {
	Out    string
	Spec   *container.Spec
	Funcs  []Func
	Copied []string // functions copied into the patch that replace nothing
}

func refusef(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrRefused, fmt.Errorf(format, args...))
}

// Build builds the container.
func Build(ctx context.Context, o Options) (*Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	data, err := readBounded(o.Patch, udiff.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("%w: patch: %w", ErrInput, err)
	}
	p, err := udiff.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: patch %s: %w", ErrInput, o.Patch, err)
	}
	var files []udiff.File
	for _, f := range p.Files {
		switch {
		case f.Old == "":
			return nil, refusef("the patch creates %s: a new file has no counterpart in the library", f.New)
		case f.New == "":
			return nil, refusef("the patch deletes %s", f.Old)
		case f.Old != f.New:
			return nil, refusef("the patch renames %s to %s", f.Old, f.New)
		case !strings.HasSuffix(f.New, ".c"):
			return nil, refusef("the patch changes %s: only C source files (.c) may change; a header or build file change may alter code or data layouts of other translation units", f.New)
		}
		files = append(files, f)
	}
	log.Debug("patch", "file", o.Patch, "files", len(files))
	lib, err := match.Open(o.Target, o.DebugRoot)
	if err != nil {
		return nil, fmt.Errorf("%w: target: %w", ErrInput, err)
	}
	if len(lib.BuildID) == 0 {
		return nil, fmt.Errorf("%w: target %s has no GNU build-id", ErrInput, o.Target)
	}
	log.Debug("target", "path", o.Target, "build_id", fmt.Sprintf("%x", lib.BuildID), "soname", lib.Soname)

	work := o.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "ulp-build-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	root := o.Recipe.Root()
	before := make([]recipe.Command, len(files))
	for i, f := range files {
		if before[i], err = o.Recipe.Command(ctx, f.New); err != nil {
			return nil, fmt.Errorf("recipe %s: %w", o.Recipe.Name(), err)
		}
		log.Debug("command", "file", f.New, "dir", before[i].Dir, "args", strings.Join(before[i].Args, " "))
	}
	afterRoot := filepath.Join(work, "after")
	if err := patchTree(ctx, log, root, afterRoot, o.Patch, files); err != nil {
		return nil, err
	}
	b := &build{o: o, log: log, lib: lib, work: work, slots: make(map[string]*slot)}
	for i, f := range files {
		// The lines the patch changed, where patch put them (a hunk may
		// apply at an offset), numbered as in the original file, which
		// unchanged lines of the patched one keep (#line directives).
		changed, err := keepLineNumbers(ctx, filepath.Join(root, f.New), filepath.Join(afterRoot, f.New), f.New)
		if err != nil {
			return nil, err
		}
		tu, err := b.unit(ctx, i, f.New, changed, before[i], rebase(before[i], root, afterRoot))
		if err != nil {
			return nil, err
		}
		b.units = append(b.units, tu)
	}
	return b.finish(ctx, p)
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// patchTree makes dst a hard-link copy of src, replaces the files the patch
// changes by copies of their own (so that the tree of src stays as it
// is, whatever patch does), and applies the patch there.
func patchTree(ctx context.Context, log *slog.Logger, src, dst, patchFile string, files []udiff.File) error {
	if out, err := exec.CommandContext(ctx, "cp", "-al", src, dst).CombinedOutput(); err != nil {
		log.Debug("hard-link copy failed, copying", "err", err, "output", string(out))
		os.RemoveAll(dst)
		if out, err := exec.CommandContext(ctx, "cp", "-a", src, dst).CombinedOutput(); err != nil {
			return fmt.Errorf("copy %s: %w: %s", src, err, out)
		}
	}
	for _, f := range files {
		p := filepath.Join(dst, filepath.FromSlash(f.New))
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("%w: the patch changes %s: %w", ErrInput, f.New, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, fi.Mode().Perm()); err != nil {
			return err
		}
	}
	abs, err := filepath.Abs(patchFile)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "patch", "-p1", "--no-backup-if-mismatch", "--batch", "--forward", "-s", "-i", abs)
	cmd.Dir = dst
	if out, err := cmd.CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%w: the patch does not apply to %s: %s", ErrInput, src, bytes.TrimSpace(out))
		}
		return fmt.Errorf("run patch: %w", err)
	}
	for _, f := range files {
		a, err1 := os.Stat(filepath.Join(src, filepath.FromSlash(f.New)))
		b, err2 := os.Stat(filepath.Join(dst, filepath.FromSlash(f.New)))
		if err1 != nil || err2 != nil || os.SameFile(a, b) {
			return fmt.Errorf("patched %s shares its file with the original tree", f.New)
		}
	}
	log.Debug("patched", "tree", dst)
	return nil
}

// rebase returns c with the tree root replaced by newRoot in its folder and
// in every argument that names a path under it.
func rebase(c recipe.Command, root, newRoot string) recipe.Command {
	sub := func(s string) string {
		i := strings.Index(s, root)
		for i >= 0 {
			end := i + len(root)
			if (end == len(s) || s[end] == '/') && (i == 0 || strings.ContainsRune("=-I:,", rune(s[i-1])) || s[i-1] == ' ' || strings.HasPrefix(s, "-")) {
				return s[:i] + newRoot + s[end:]
			}
			j := strings.Index(s[i+1:], root)
			if j < 0 {
				break
			}
			i += 1 + j
		}
		return s
	}
	out := recipe.Command{Dir: sub(c.Dir), Args: make([]string, len(c.Args))}
	for i, a := range c.Args {
		out.Args[i] = sub(a)
	}
	return out
}

// compile runs c with the mode flag (-c or -S), extra flags and -o out.
func compile(ctx context.Context, log *slog.Logger, c recipe.Command, mode, out string, extra ...string) error {
	if len(c.Args) == 0 {
		return fmt.Errorf("%w: empty compile command", ErrInput)
	}
	args := []string{}
	for _, a := range c.Args[1:] {
		switch {
		case a == "-c" || a == "-S" || a == "-E":
			continue
		case strings.HasPrefix(a, "-flto"):
			continue
		}
		args = append(args, a)
	}
	args = append(args, mode)
	args = append(args, extra...)
	args = append(args, "-o", out)
	cmd := exec.CommandContext(ctx, c.Args[0], args...)
	cmd.Dir = c.Dir
	log.Debug("compile", "out", filepath.Base(out), "dir", c.Dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("compile %s: %w\n%s", out, err, bytes.TrimSpace(b))
	}
	return nil
}

// sectionFlags are added to every compile: one section a function or an
// object, so that objects compare function by function and ld can drop
// what the patch does not reach.
var sectionFlags = []string{"-ffunction-sections", "-fdata-sections"}

// symbolOffsets reads the defined symbols of an ELF file by name (the first of each).
func symbolOffsets(path string) (map[string]elf.Symbol, error) {
	ef, err := elfsym.OpenStd(path)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	syms, err := ef.Symbols()
	if err != nil {
		return nil, err
	}
	out := make(map[string]elf.Symbol, len(syms))
	for _, s := range syms {
		if s.Section == elf.SHN_UNDEF || s.Name == "" {
			continue
		}
		if _, ok := out[s.Name]; !ok {
			out[s.Name] = s
		}
	}
	return out, nil
}

// commentLines returns the comment lines of the container: -m, then the lines
// of the patch's header that carry a bug label.
func commentLines(o Options, p *udiff.Patch) []string {
	lines := []string{fmt.Sprintf("ulp build: %s for %s", filepath.Base(o.Patch), filepath.Base(o.Target))}
	for _, l := range strings.Split(o.Comment, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	for _, l := range strings.Split(p.Header, "\n") {
		if l = strings.TrimSpace(l); l != "" && len(container.Labels(l)) > 0 && !slices.Contains(lines, l) {
			lines = append(lines, l)
		}
	}
	return lines
}

// pack writes the container through the packer.
func pack(lp, target, out string, funcs []dsc.Func, refs []dsc.Ref, comments []string, extra []elfsym.Symbol, debugRoot string) (*packer.Result, error) {
	d := &dsc.Desc{File: "ulp build", Livepatch: lp, Target: target, Funcs: funcs, Refs: refs, Comments: comments}
	res, err := packer.Pack(d, packer.Options{Out: out, DebugRoot: debugRoot, Symbols: extra})
	if err != nil {
		// The description is the builder's own: its problems are said
		// without a file position.
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		var msgs []error
		for _, e := range errs {
			var de *dsc.Error
			if !errors.As(e, &de) {
				return nil, err
			}
			msgs = append(msgs, errors.New(de.Msg))
		}
		return nil, fmt.Errorf("%w: %w", ErrRefused, errors.Join(msgs...))
	}
	return res, nil
}
