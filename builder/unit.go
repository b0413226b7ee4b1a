package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"ulp/builder/asm"
	"ulp/builder/match"
	"ulp/builder/obj"
	"ulp/builder/recipe"
	"ulp/builder/udiff"
)

// build is the state of one Build.
type build struct {
	o     Options
	log   *slog.Logger
	lib   *match.Lib
	work  string
	units []*unit
	slots map[string]*slot

	linkable map[string]bool // names the livepatch's link can bind dynamically (linkableNames), read once
}

// slot is one pointer slot of the patch and what it must receive.
type slot struct {
	Sym    string // the library's symbol
	Off    uint64 // its offset in the library (or of its GOT entry)
	Known  bool
	Reason string // why it is unknown
}

// unit is one translation unit of the fix.
type unit struct {
	i       int
	file    string
	match   *obj.Object // compiled with the package's flags only
	before  *obj.Object
	after   *obj.Object
	res     *match.Result
	changed []string          // functions the container replaces
	keep    map[string]bool   // functions the patch has its own code of
	asm     string            // the rewritten assembly
	alias   map[string]string // the patch's name of a replacing function whose own is not unique
	// unsupported are the instructions the rewrite could not redirect
	// (asm.Result.Unsupported): a refusal if the patch keeps one.
	unsupported []error
	roots       []string
	rootName    string
}

func (b *build) unit(ctx context.Context, i int, file string, lines []udiff.Range, bc, ac recipe.Command) (*unit, error) {
	u := &unit{i: i, file: file, keep: make(map[string]bool), rootName: fmt.Sprintf("__ulp_roots_%d", i)}
	base := filepath.Join(b.work, fmt.Sprintf("tu%d", i))
	matchObj, beforeObj, afterObj, afterAsm := base+".match.o", base+".before.o", base+".after.o", base+".after.s"
	// The object matched against the library is compiled exactly as the
	// package does: one section a function would change the encoding of
	// jumps between functions (the assembler shortens those inside one
	// section).
	if err := compile(ctx, b.log, bc, "-c", matchObj); err != nil {
		return nil, err
	}
	// -g: the compared objects' DWARF tells changed type layouts.
	if err := compile(ctx, b.log, bc, "-c", beforeObj, append(slices.Clone(sectionFlags), "-g")...); err != nil {
		return nil, err
	}
	if err := compile(ctx, b.log, ac, "-c", afterObj, append(slices.Clone(sectionFlags), "-g")...); err != nil {
		return nil, fmt.Errorf("%w: the fixed source does not compile: %w", ErrRefused, err)
	}
	// The assembly is compiled with the flags of the compared object (-g
	// changes no code), so that the patch's code is the code compared:
	// callers that GCC compiled knowing which registers a local function
	// clobbers (-fipa-ra) stay right.
	if err := compile(ctx, b.log, ac, "-S", afterAsm, append(slices.Clone(sectionFlags), "-g")...); err != nil {
		return nil, err
	}
	var err error
	if u.match, err = readObj(matchObj); err != nil {
		return nil, err
	}
	if u.before, err = readObj(beforeObj); err != nil {
		return nil, err
	}
	if u.after, err = readObj(afterObj); err != nil {
		return nil, err
	}
	d := obj.Diff(u.before, u.after)
	refused, err := changedLayouts(beforeObj, afterObj)
	if err != nil {
		return nil, err
	}
	if refused = append(d.Refused, refused...); len(refused) > 0 {
		return nil, fmt.Errorf("%w: %s: %w", ErrRefused, file, errors.Join(refused...))
	}
	changed := make(map[string]bool)
	for _, n := range d.Changed {
		changed[n] = true
	}
	// A changed cold part changes its function: the old function jumps to
	// the old part.
	for _, n := range append(slices.Clone(d.Changed), d.New...) {
		if p, ok := coldParent(n); ok && u.before.Func(p) != nil && u.after.Func(p) != nil {
			changed[p] = true
		}
	}
	// GCC compiles a caller of a static function knowing which registers
	// it clobbers (-fipa-ra). An unchanged caller of a changed one was
	// compiled as right for the new code too, but only the compared copy:
	// where the package's own compile of it differs (the assembler shortens
	// jumps inside one section), the caller is replaced too.
	local := make(map[string]bool)
	for n := range changed {
		if f := u.before.Func(n); f != nil && !f.Global {
			local["fn:"+n] = true
		}
	}
	for _, c := range u.before.Funcs {
		if changed[c.Name] || !calls(c, local) {
			continue
		}
		if m := u.match.Func(c.Name); m == nil || len(m.Code) != len(c.Code) || !bytes.Equal(obj.Masked(m.Code, c.Relocs), obj.Masked(c.Code, c.Relocs)) {
			b.log.Debug("replacing a caller of a changed static function", "tu", file, "func", c.Name)
			changed[c.Name] = true
		}
	}
	src, err := os.ReadFile(afterAsm)
	if err != nil {
		return nil, err
	}
	spans := funcSpans(src, path.Base(file), u.after)
	moved := make(map[string]bool) // functions whose identity changed
	for _, n := range append(append(slices.Clone(d.Changed), d.New...), d.Gone...) {
		moved["fn:"+n] = true
	}
	var errs []error
	for n := range changed {
		if _, cold := coldParent(n); cold || refersTo(u.after.Func(n), moved) {
			// A caller of a function GCC now inlines, clones or
			// specialises differently changes with it.
			continue
		}
		sp, ok := spans[n]
		if !ok || !intersects(sp, lines) {
			errs = append(errs, fmt.Errorf("%s changed although the patch changes none of its lines (%s): a macro, type or constant it uses changed, which data already in memory (a buffer sized by it, a layout) may still follow; refused to be safe (a fix that only changes a limit can change the lines that use it instead)", n, sp))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s: %w", ErrRefused, file, errors.Join(errs...))
	}
	u.res = b.lib.Match(u.match.Funcs)
	for _, fn := range u.match.Funcs {
		if off, ok := u.res.Funcs[fn.Name]; ok {
			b.log.Debug("matched", "tu", file, "func", fn.Name, "lib_offset", fmt.Sprintf("%#x", off), "size", len(fn.Code))
		} else {
			b.log.Debug("not matched", "tu", file, "func", fn.Name, "why", u.res.Missed[fn.Name])
		}
	}
	for _, n := range sortedKeys(changed) {
		if _, cold := coldParent(n); cold {
			continue
		}
		if _, ok := u.res.Funcs[n]; !ok {
			errs = append(errs, fmt.Errorf("changed function %s is not in %s: %w", n, b.lib.Name, u.res.Missed[n]))
			continue
		}
		u.changed = append(u.changed, n)
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("%d of the %d functions of %s match %s (build the library with the same compiler and flags as the recipe's: %s)", len(u.res.Funcs), len(u.match.Funcs), file, b.lib.Name, strings.Join(bc.Args, " ")))
		return nil, fmt.Errorf("%w: %s: %w", ErrRefused, file, errors.Join(errs...))
	}
	for _, fn := range u.after.Funcs {
		_, cold := coldParent(fn.Name)
		_, located := u.res.Funcs[fn.Name]
		if changed[fn.Name] || cold || !located || u.before.Func(fn.Name) == nil {
			u.keep[fn.Name] = true
		}
	}
	for _, n := range d.New {
		if _, cold := coldParent(n); !cold {
			u.roots = append(u.roots, n)
		}
	}
	u.roots = append(slices.Clone(u.changed), u.roots...)
	b.log.Debug("diff", "tu", file, "changed", strings.Join(d.Changed, ","), "new", strings.Join(d.New, ","), "gone", strings.Join(d.Gone, ","))
	out, err := asm.Rewrite(src, asm.Options{Resolve: func(sym string, use asm.Use) (asm.Ref, error) { return b.resolve(u, sym, use) }, Roots: u.roots, Root: u.rootName, Unit: i})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRefused, file, err)
	}
	u.unsupported = out.Unsupported
	u.asm = base + ".patch.s"
	if err := os.WriteFile(u.asm, out.Source, 0o644); err != nil {
		return nil, err
	}
	b.log.Debug("rewrote", "tu", file, "instructions", out.Rewritten, "slots", len(out.Slots))
	return u, nil
}

// changedLayouts compares the struct and union layouts of two objects.
func changedLayouts(before, after string) ([]error, error) {
	var ls [2]map[string]string
	for i, p := range []string{before, after} {
		data, err := readBounded(p, obj.MaxSize)
		if err != nil {
			return nil, err
		}
		if ls[i], err = obj.Layouts(data); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return obj.ChangedLayouts(ls[0], ls[1]), nil
}

func readObj(p string) (*obj.Object, error) {
	data, err := readBounded(p, obj.MaxSize)
	if err != nil {
		return nil, err
	}
	o, err := obj.Read(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return o, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// coldParent returns the function whose cold part name is ("f" of
// "f.cold", "f.cold.1").
func coldParent(name string) (string, bool) {
	i := strings.Index(name, ".cold")
	if i <= 0 {
		return "", false
	}
	return name[:i], true
}

// calls reports whether f calls (e8 rel32, not a jump: nothing of a
// tail call's caller lives on) one of the functions in ids.
func calls(f *obj.Func, ids map[string]bool) bool {
	return slices.ContainsFunc(f.Relocs, func(r obj.Reloc) bool { return ids[r.ID] && r.Off > 0 && f.Code[r.Off-1] == 0xe8 })
}

// refersTo reports whether f refers to one of the functions in ids.
func refersTo(f *obj.Func, ids map[string]bool) bool {
	if f == nil {
		return false
	}
	return slices.ContainsFunc(f.Relocs, func(r obj.Reloc) bool { return ids[r.ID] })
}

// span is the range of source lines a function's code comes from.
type span struct{ lo, hi int }

func (s span) String() string {
	if s.lo == 0 {
		return "no line information"
	}
	return fmt.Sprintf("its code comes from lines %d-%d", s.lo, s.hi)
}

func intersects(s span, rs []udiff.Range) bool {
	for _, r := range rs {
		if s.lo != 0 && r.Lo <= s.hi && r.Hi >= s.lo {
			return true
		}
	}
	return false
}

// funcSpans reads, from GCC's -g assembly, the lines of the source file
// base each function's code comes from.
func funcSpans(src []byte, base string, o *obj.Object) map[string]span {
	files := make(map[string]bool)
	spans := make(map[string]span)
	cur := ""
	for _, line := range strings.Split(string(src), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, ".file\t") || strings.HasPrefix(t, ".file "):
			f := strings.Fields(t)
			if len(f) >= 3 {
				name := strings.Trim(f[len(f)-1], `"`)
				if path.Base(name) == base {
					files[f[1]] = true
				}
			}
		case strings.HasSuffix(t, ":") && !strings.HasPrefix(t, ".L"):
			if n := strings.TrimSuffix(t, ":"); o.Func(n) != nil {
				cur = n
			}
		case strings.HasPrefix(t, ".loc\t") || strings.HasPrefix(t, ".loc "):
			f := strings.Fields(t)
			if cur == "" || len(f) < 3 || !files[f[1]] {
				continue
			}
			ln, err := strconv.Atoi(f[2])
			if err != nil || ln <= 0 {
				continue
			}
			s := spans[cur]
			if s.lo == 0 || ln < s.lo {
				s.lo = ln
			}
			s.hi = max(s.hi, ln)
			spans[cur] = s
		}
	}
	return spans
}

// slotName names the slot of sym in unit u.
func (u *unit) slotName(kind, sym string) string {
	if u.i == 0 {
		return "__ulp_" + kind + "_" + sym
	}
	return fmt.Sprintf("__ulp_%s%d_%s", kind, u.i, sym)
}

// slot records the slot for sym at place (or why it has none).
func (b *build) slot(u *unit, kind, sym string, place match.Place, known bool, reason string) asm.Ref {
	name := u.slotName(kind, sym)
	if _, ok := b.slots[name]; !ok {
		b.slots[name] = &slot{Sym: sym, Off: place.Off, Known: known, Reason: reason}
	}
	act := asm.Slot
	if kind == "got" {
		act = asm.GOTSlot
	}
	return asm.Ref{Action: act, Slot: name}
}

// libSymbol returns the library's named symbol sym (from its symbol
// table, dynamic symbols or debuginfo) and whether it is exported.
func (b *build) libSymbol(sym string) (off uint64, exported, ok bool) {
	for _, s := range b.lib.Symbols().Symbols {
		if s.Name != sym {
			continue
		}
		return s.Offset, s.Bind != "local", true
	}
	return 0, false, false
}

// resolve decides how the patch's code of unit u reaches sym.
func (b *build) resolve(u *unit, sym string, use asm.Use) (asm.Ref, error) {
	keep := asm.Ref{Action: asm.Keep}
	if f := u.after.Func(sym); f != nil {
		place, located := u.res.Ref("fn:"+sym, match.Direct)
		switch {
		case (use == asm.UseCall || use == asm.UseJump) && u.keep[sym]:
			return keep, nil
		case located:
			return b.slot(u, "ref", sym, place, true, ""), nil
		}
		return keep, nil
	}
	if d := u.after.Datum(sym); d != nil {
		switch {
		case d.TLS:
			if place, ok := u.res.Ref("tls:"+sym, match.GOT); ok && use == asm.UseTLS {
				return b.slot(u, "got", sym, place, true, ""), nil
			}
			return asm.Ref{}, fmt.Errorf("thread-local variable %s: only initial-exec accesses that the library makes too are handled", sym)
		case !d.Writable:
			// Read-only data the library has (the same content, located
			// through a matched function) is the library's, so that its
			// address stays the one the library hands out and compares;
			// otherwise the patch has its own copy.
			if place, ok := u.res.Ref(d.ID, match.Direct); ok && d.ID != "" {
				return b.slot(u, "ref", sym, place, true, ""), nil
			}
			return keep, nil
		}
		if place, ok := u.res.Ref("var:"+sym, match.Direct); ok {
			return b.slot(u, "ref", sym, place, true, ""), nil
		}
		if place, ok := u.res.Ref("var:"+sym, match.GOT); ok && use == asm.UseGOT {
			if _, exported, _ := b.libSymbol(sym); exported {
				return keep, nil
			}
			return b.slot(u, "got", sym, place, true, ""), nil
		}
		if off, _, ok := b.libSymbol(sym); ok {
			return b.slot(u, "ref", sym, match.Place{Off: off}, true, ""), nil
		}
		return b.slot(u, "ref", sym, match.Place{}, false, fmt.Sprintf("variable %s is not located in %s: no function of the library that was matched refers to it and the library has no symbol for it (install its debuginfo)", sym, b.lib.Name)), nil
	}
	id := "ext:" + sym
	if use == asm.UseTLS {
		if place, ok := u.res.Ref(id, match.GOT); ok {
			return b.slot(u, "got", sym, place, true, ""), nil
		}
		return asm.Ref{}, fmt.Errorf("thread-local variable %s is not located in %s", sym, b.lib.Name)
	}
	if place, ok := u.res.Ref(id, match.Direct); ok {
		return b.slot(u, "ref", sym, place, true, ""), nil
	}
	switch use {
	case asm.UseCall, asm.UseJump:
		if place, ok := u.res.Ref(id, match.PLT); ok {
			if b.linkableName(sym) {
				return keep, nil
			}
			// The library calls a name no dynamic symbol table has
			// through a PLT entry of its own (glibc's __GI_strchr, an
			// IFUNC bound by an IRELATIVE relocation): the patch calls
			// that entry.
			return b.slot(u, "ref", sym, place, true, ""), nil
		}
	case asm.UseGOT:
		if _, ok := u.res.Ref(id, match.GOT); ok {
			return keep, nil
		}
	}
	off, exported, ok := b.libSymbol(sym)
	switch {
	case ok && !exported:
		return b.slot(u, "ref", sym, match.Place{Off: off}, true, ""), nil
	case use == asm.UseCall || use == asm.UseJump || use == asm.UseGOT:
		return keep, nil // the dynamic linker binds it, as in the library
	case ok:
		return b.slot(u, "ref", sym, match.Place{Off: off}, true, ""), nil
	}
	return b.slot(u, "ref", sym, match.Place{}, false, fmt.Sprintf("%s is not located in %s: it is not exported, no matched function refers to it, and the library has no symbol for it (install its debuginfo)", sym, b.lib.Name)), nil
}
