package packer

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"ulp/internal/atomicfile"
	"ulp/livepatch/container"
	"ulp/livepatch/dsc"
	"ulp/livepatch/elfedit"
	"ulp/livepatch/elfsym"
)

// MaxLivepatchSize bounds the livepatch file read into memory.
const MaxLivepatchSize = 1 << 30

// Options tune Pack.
type Options struct {
	// Out is where the container is written; empty means in place, over
	// the livepatch named by the description.
	Out string
	// DebugRoot is searched for the target's separate debuginfo by
	// build-id (see elfsym.DebuginfoPath); empty disables the search.
	DebugRoot string
	// Symbols are added to the target's (see elfsym.LoadOptions.Extra).
	Symbols []elfsym.Symbol
}

// Result describes a packed container.
type Result struct {
	Out    string // the file written
	Apply  *container.Spec
	Revert *container.Spec
}

// Pack resolves desc, builds the metadata and writes the container.
//
// Problems with the input (a missing or malformed livepatch or target, a
// name that does not resolve) are returned as *dsc.Error values, joined, and
// nothing is written. Other errors come from writing the result; no
// temporary file is left behind in either case.
func Pack(desc *dsc.Desc, o Options) (*Result, error) {
	lpData, lp, err := readLivepatch(desc)
	if err != nil {
		return nil, err
	}
	target, err := elfsym.Load(desc.Target, elfsym.LoadOptions{DebugRoot: o.DebugRoot, Extra: o.Symbols})
	if err != nil {
		return nil, desc.Errorf(desc.TargetPos, "target: %w", err)
	}
	if len(target.BuildID) == 0 {
		return nil, desc.Errorf(desc.TargetPos, "target %s has no GNU build-id (link it with -Wl,--build-id)", desc.Target)
	}
	apply, err := resolve(desc, lp, target)
	if err != nil {
		return nil, err
	}
	apply.ID, err = patchID(lp.BuildID, apply)
	if err != nil {
		return nil, err
	}
	revert := &container.Spec{Kind: container.Revert, ID: apply.ID, Target: apply.Target,
		Comments: apply.Comments, Labels: apply.Labels}
	applyData, err := container.Marshal(apply)
	if err != nil {
		return nil, err
	}
	revertData, err := container.Marshal(revert)
	if err != nil {
		return nil, err
	}
	packed, err := elfedit.AddSections(lpData, []elfedit.Section{
		{Name: container.SectionApply, Data: applyData},
		{Name: container.SectionRevert, Data: revertData},
		{Name: container.SectionComments, Data: []byte(apply.Comments)},
	})
	if err != nil {
		return nil, desc.Errorf(desc.LivepatchPos, "livepatch: %w", err)
	}
	out := o.Out
	if out == "" {
		out = desc.Livepatch
	}
	perm := os.FileMode(0o755)
	if fi, err := os.Stat(desc.Livepatch); err == nil {
		perm = fi.Mode().Perm()
	}
	if err := atomicfile.Write(out, perm, func(w io.Writer) error {
		_, err := w.Write(packed)
		return err
	}); err != nil {
		return nil, fmt.Errorf("write container %s: %w", out, err)
	}
	return &Result{Out: out, Apply: apply, Revert: revert}, nil
}

// readLivepatch reads the livepatch: an x86-64 ELF shared object with a GNU
// build-id.
func readLivepatch(desc *dsc.Desc) ([]byte, *elfsym.Object, error) {
	at := desc.LivepatchPos
	fi, err := os.Stat(desc.Livepatch)
	if err != nil {
		return nil, nil, desc.Errorf(at, "livepatch: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, desc.Errorf(at, "livepatch %s is not a regular file", desc.Livepatch)
	}
	if fi.Size() > MaxLivepatchSize {
		return nil, nil, desc.Errorf(at, "livepatch %s is larger than %d bytes", desc.Livepatch, MaxLivepatchSize)
	}
	data, err := os.ReadFile(desc.Livepatch)
	if err != nil {
		return nil, nil, desc.Errorf(at, "livepatch: %w", err)
	}
	if !bytes.HasPrefix(data, []byte(elf.ELFMAG)) {
		return nil, nil, desc.Errorf(at, "livepatch %s is not an ELF file", desc.Livepatch)
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, nil, desc.Errorf(at, "livepatch %s: %w", desc.Livepatch, err)
	}
	if ef.Type != elf.ET_DYN || ef.Machine != elf.EM_X86_64 || ef.Class != elf.ELFCLASS64 || isPIE(ef) {
		return nil, nil, desc.Errorf(at, "livepatch %s is a %s %s file, want an x86-64 shared object", desc.Livepatch, ef.Machine, kind(ef))
	}
	lp, err := elfsym.Read(bytes.NewReader(data), filepath.Base(desc.Livepatch))
	if err != nil {
		return nil, nil, desc.Errorf(at, "livepatch %s: %w", desc.Livepatch, err)
	}
	if len(lp.BuildID) == 0 {
		return nil, nil, desc.Errorf(at, "livepatch %s has no GNU build-id (link it with -Wl,--build-id)", desc.Livepatch)
	}
	return data, lp, nil
}

// resolve turns every line of desc into the Apply spec, collecting every
// problem.
func resolve(desc *dsc.Desc, lp, target *elfsym.Object) (*container.Spec, error) {
	spec := &container.Spec{
		Kind:     container.Apply,
		Target:   container.Target{Name: target.Name, BuildID: target.BuildID},
		Comments: desc.CommentText(),
	}
	spec.Labels = container.Labels(spec.Comments)
	var errs []error
	for _, f := range desc.Funcs {
		var old elfsym.Symbol
		var err error
		if f.HasOldOffset {
			old, err = target.LookupAt(f.Old, f.OldOffset, elfsym.TypeFunc)
		} else {
			old, err = target.Lookup(f.Old, elfsym.TypeFunc)
		}
		var mech container.Mechanism
		switch {
		case err != nil:
			if _, ierr := target.Lookup(f.Old, elfsym.TypeIFunc); ierr == nil {
				err = fmt.Errorf("%q in %s is an IFUNC: the process calls the implementation its resolver picked, so name that implementation (for strlen, e.g. __strlen_avx2 or __strlen_sse2, as `ulp extract` lists them with a debuginfo file) as the old function and patch each candidate", f.Old, target.Name)
			}
			errs = append(errs, desc.Errorf(f.Pos, "old function: %w", err))
		case old.Pad:
			mech = container.MechPad
		case old.Entry:
			mech = container.MechEntry
		default:
			errs = append(errs, desc.Errorf(f.Pos, "old function %q at %#x in %s has no patchable entry pad and its entry cannot take a jump: %s", f.Old, old.Offset, target.Name, old.Refused))
		}
		nf, err := lp.Lookup(f.New, elfsym.TypeFunc)
		if err != nil {
			errs = append(errs, desc.Errorf(f.NewPos, "new function: %w", err))
		}
		spec.Funcs = append(spec.Funcs, container.Func{
			Old: f.Old, New: f.New,
			OldOffset: old.Offset, NewOffset: nf.Offset,
			Mechanism: mech, EntryOffset: old.EntryOffset,
		})
	}
	for _, r := range desc.Refs {
		ref := container.Ref{TargetVar: r.TargetVar, PatchRef: r.PatchRef, TLS: r.TLS,
			TargetOffset: r.TargetOffset, PatchOffset: r.PatchOffset}
		if !r.HasOffsets {
			targetTypes := []elfsym.Type{elfsym.TypeObject, elfsym.TypeFunc, elfsym.TypeCommon}
			if r.TLS {
				targetTypes = []elfsym.Type{elfsym.TypeTLS}
			}
			tv, err := target.Lookup(r.TargetVar, targetTypes...)
			if err != nil {
				errs = append(errs, desc.Errorf(r.Pos, "target variable: %w", err))
			}
			pr, err := lp.Lookup(r.PatchRef, elfsym.TypeObject)
			if err != nil {
				errs = append(errs, desc.Errorf(r.RefPos, "patch reference: %w", err))
			}
			ref.TargetOffset, ref.PatchOffset = tv.Offset, pr.Offset
		} else if _, err := lp.LookupAt(r.PatchRef, r.PatchOffset, elfsym.TypeObject); err != nil {
			// The livepatch is at hand: its variable must be where the
			// description says.
			errs = append(errs, desc.Errorf(r.RefPos, "patch reference: %w", err))
		}
		spec.Refs = append(spec.Refs, ref)
	}
	if len(errs) == 0 {
		// The same checks as the agent's before it writes (a JSON dump
		// without segments leaves the target's out).
		// Function by function, so that each error names its line: the
		// first failing prefix fails on its last function.
		for i := range spec.Funcs {
			if err := (&container.Spec{Target: spec.Target, Funcs: spec.Funcs[:i+1]}).CheckOffsets(target.Segments, lp.Segments); err != nil {
				errs = append(errs, desc.Errorf(desc.Funcs[i].Pos, "%w", err))
				break
			}
		}
		for i, r := range spec.Refs {
			if err := (&container.Spec{Target: spec.Target, Refs: []container.Ref{r}}).CheckOffsets(target.Segments, lp.Segments); err != nil {
				errs = append(errs, desc.Errorf(desc.Refs[i].Pos, "%w", err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return spec, nil
}

// idDomain starts the hashed input of a patch id; see
// docs/container-format.md.
const idDomain = "ulp patch id v1\x00"

// patchID is SHA-256 over idDomain, the livepatch build-id (one length
// byte, then the bytes), the .ulp payload of spec with a zero ID, and the
// comment text.
func patchID(buildID []byte, spec *container.Spec) (container.ID, error) {
	zero := *spec
	zero.ID = container.ID{}
	payload, err := container.Marshal(&zero)
	if err != nil {
		return container.ID{}, err
	}
	h := sha256.New()
	h.Write([]byte(idDomain))
	h.Write([]byte{byte(len(buildID))})
	h.Write(buildID)
	h.Write(payload)
	h.Write([]byte(spec.Comments))
	var id container.ID
	h.Sum(id[:0])
	return id, nil
}

// dfPIE is DF_1_PIE of DT_FLAGS_1 (<elf.h>): a position-independent executable.
const dfPIE = 0x08000000

func isPIE(ef *elf.File) bool {
	flags, err := ef.DynValue(elf.DT_FLAGS_1)
	return err == nil && len(flags) > 0 && flags[0]&dfPIE != 0
}

func kind(ef *elf.File) string {
	if isPIE(ef) {
		return "PIE executable"
	}
	return ef.Type.String()
}
