package builder

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"ulp/builder/asm"
	"ulp/builder/udiff"
	"ulp/livepatch/dsc"
	"ulp/livepatch/elfsym"
)

// finish links the rewritten units into the livepatch, checks what the
// linker kept, and packs the container.
func (b *build) finish(ctx context.Context, p *udiff.Patch) (*Result, error) {
	if err := b.aliasCollisions(); err != nil {
		return nil, err
	}
	lp := filepath.Join(b.work, "livepatch.so")
	args := []string{"-shared", "-fPIC", "-o", lp, "-Wl,--gc-sections", "-Wl,--build-id", "-Wl,-z,defs", "-Wl,-z,noexecstack"}
	for _, u := range b.units {
		args = append(args, u.asm)
	}
	needed, err := neededLibs(b.lib.Path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", b.lib.Path, err)
	}
	args = append(append(args, "-Wl,--as-needed", b.lib.Path), needed...)
	cc := "gcc"
	cmd := exec.CommandContext(ctx, cc, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			var why []error
			for _, u := range b.units {
				for n, e := range u.unsupported {
					if strings.Contains(string(out), asm.UnsupportedSymbol(u.i, n)+"'") {
						why = append(why, fmt.Errorf("%s: %w", u.file, e))
					}
				}
			}
			if len(why) > 0 {
				return nil, fmt.Errorf("%w: the patch needs code that cannot be redirected to %s: %w", ErrRefused, b.lib.Name, errors.Join(why...))
			}
			return nil, fmt.Errorf("%w: linking the livepatch failed (a symbol the fixed code needs is not in %s or its libraries?): %s", ErrRefused, b.lib.Name, strings.TrimSpace(string(out)))
		}
		return nil, fmt.Errorf("link livepatch: %w", err)
	}
	b.log.Debug("linked", "livepatch", lp)
	syms, err := symbolOffsets(lp)
	if err != nil {
		return nil, fmt.Errorf("read livepatch: %w", err)
	}
	var errs []error
	var refs []dsc.Ref
	for _, name := range sortedSlots(b.slots) {
		s := b.slots[name]
		ls, kept := syms[name]
		if !kept {
			continue // no code the patch keeps uses it
		}
		if !s.Known {
			errs = append(errs, errors.New(s.Reason))
			continue
		}
		refs = append(refs, dsc.Ref{TargetVar: s.Sym, PatchRef: name, TargetOffset: s.Off, PatchOffset: ls.Value, HasOffsets: true})
		b.log.Debug("reference", "symbol", s.Sym, "lib_offset", fmt.Sprintf("%#x", s.Off), "slot", name, "patch_offset", fmt.Sprintf("%#x", ls.Value))
	}
	// A writable variable of the unit that the linker kept is pointed at
	// by data of the patch, which cannot be redirected.
	for _, u := range b.units {
		for _, d := range u.after.Data {
			if _, kept := syms[d.Name]; kept && (d.Writable || d.TLS) && elf.ST_TYPE(syms[d.Name].Info) != elf.STT_FUNC {
				errs = append(errs, fmt.Errorf("%s: data the patch keeps points at variable %s, which must stay the library's", u.file, d.Name))
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrRefused, errors.Join(errs...))
	}
	res := &Result{Out: b.o.Out}
	var funcs []dsc.Func
	var extra []elfsym.Symbol
	for _, u := range b.units {
		for _, n := range u.changed {
			off := u.res.Funcs[n]
			size := len(u.before.Func(n).Code)
			if f := u.match.Func(n); f != nil {
				size = len(f.Code)
			}
			nn := n
			if a, ok := u.alias[n]; ok {
				nn = a
			}
			funcs = append(funcs, dsc.Func{Old: n, New: nn, OldOffset: off, HasOldOffset: true})
			extra = append(extra, elfsym.Symbol{Name: n, Offset: off, Size: uint64(size), Type: elfsym.TypeFunc, Bind: elfsym.BindLocal})
			res.Funcs = append(res.Funcs, Func{Name: n, TU: u.file, OldOffset: off})
		}
		for n := range u.keep {
			if !slices.Contains(u.changed, n) {
				if _, ok := syms[n]; ok {
					res.Copied = append(res.Copied, n)
				}
			}
		}
	}
	slices.Sort(res.Copied)
	if len(res.Copied) > 0 {
		b.log.Debug("copied into the patch", "functions", strings.Join(res.Copied, ","))
	}
	if len(funcs) == 0 {
		return nil, fmt.Errorf("%w: the patch changes no function's code", ErrRefused)
	}
	pr, err := pack(lp, b.o.Target, b.o.Out, funcs, refs, commentLines(b.o, p), extra, b.o.DebugRoot)
	if err != nil {
		return nil, err
	}
	res.Spec = pr.Apply
	return res, nil
}

func sortedSlots(m map[string]*slot) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// aliasCollisions gives a replacing function that another unit's code has
// a function of the same name of too (two static functions of one name)
// an alias of its own, NAME.ulpN, for the container to name it by.
func (b *build) aliasCollisions() error {
	for _, u := range b.units {
		var add strings.Builder
		for _, n := range u.changed {
			if !slices.ContainsFunc(b.units, func(v *unit) bool { return v != u && v.after.Func(n) != nil }) {
				continue
			}
			a := fmt.Sprintf("%s.ulp%d", n, u.i)
			fmt.Fprintf(&add, "\t.type\t%s, @function\n\t.set\t%s, %s\n", a, a, n)
			if u.alias == nil {
				u.alias = make(map[string]string)
			}
			u.alias[n] = a
		}
		if add.Len() == 0 {
			continue
		}
		f, err := os.OpenFile(u.asm, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(add.String())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
