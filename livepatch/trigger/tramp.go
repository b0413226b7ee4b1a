package trigger

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"strconv"

	"ulp/livepatch/container"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/ledger"
	"ulp/livepatch/procfs"
)

// Trampolines of the entry mechanism: when a replacement lies beyond the
// ±2 GiB reach of the `jmp rel32` written over an unpadded entry, the jump
// goes to a trampoline, `jmp *0(%rip)` and the replacement's 8-byte address
// (ledger.PadBytes), in the free bytes after the end of the target's
// executable segment on its last page: mapped executable with the rest of
// the page, never used by the program, and within reach of every function
// of the object. The ledger records the trampoline as the entry's
// replacement address, so a slot is free when no stack entry names it.
const (
	trampSlot = 16 // slot size and alignment
	trampLen  = 14 // the bytes written
	pageSize  = 4096
)

// trampolines returns p with every redirect that an entry jump cannot
// reach going through a trampoline instead, and the writes of those
// trampolines, to be made before the plan's. l is the ledger before the
// change: its trampolines stay untouched.
func (r *run) trampolines(l *ledger.Ledger, p ledger.Patch) (ledger.Patch, []ledger.Write, error) {
	var writes []ledger.Write
	var slots []uint64
	used := make(map[uint64]bool)
	for _, s := range l.Stacks {
		for _, e := range s.Entries {
			used[e.New] = true
		}
	}
	p.Redirects = slices.Clone(p.Redirects)
	for i := range p.Redirects {
		rd := &p.Redirects[i]
		f := r.spec.Funcs[i]
		mech, off := f.Mechanism, f.EntryOffset
		if s := l.Stack(rd.Old); s != nil {
			mech, off = s.Mechanism, s.EntryOffset
		}
		if mech != container.MechEntry {
			continue
		}
		if _, err := ledger.JumpBytes(rd.Old+uint64(off), rd.New); err == nil {
			continue
		}
		if slots == nil {
			var err error
			if slots, err = r.trampSlots(); err != nil {
				return p, nil, failed("function %s: the replacement at %#x is beyond the ±2 GiB reach of a jump at %#x and no trampoline fits: %w", f.Old, rd.New, rd.Old, err)
			}
		}
		i := slices.IndexFunc(slots, func(a uint64) bool { return !used[a] })
		if i < 0 {
			return p, nil, failed("function %s: the replacement at %#x is beyond the ±2 GiB reach of a jump at %#x and the %d trampoline slots of %s are in use",
				f.Old, rd.New, rd.Old, len(slots), r.obj.Name)
		}
		used[slots[i]] = true
		r.log.Debug("trampoline", "function", f.Old, "slot", slots[i], "to", rd.New)
		writes = append(writes, ledger.Write{Addr: slots[i], Data: ledger.PadBytes(rd.New)})
		rd.New = slots[i]
	}
	return p, writes, nil
}

// trampSlots returns the trampoline slots of the target object: the
// 16-byte aligned slots between the end of its executable segment and the
// end of that page, whose bytes are zero (file padding) or a trampoline.
func (r *run) trampSlots() ([]uint64, error) {
	if r.obj.Deleted {
		// The file on disk is another build: its segments say nothing of
		// the mapped one.
		return nil, errors.New(r.obj.Path + " was replaced on disk after the process mapped it")
	}
	// Through the process's root: the path is as the process sees it.
	ef, err := elfsym.OpenFile(filepath.Join("/proc", strconv.Itoa(r.pid), "root", r.obj.Path))
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	maps, err := procfs.Maps(r.pid)
	if err != nil {
		return nil, err
	}
	var slots []uint64
	for _, ph := range ef.Progs {
		if ph.Type != elf.PT_LOAD || ph.Flags&elf.PF_X == 0 {
			continue
		}
		end := r.obj.Bias + ph.Vaddr + max(ph.Filesz, ph.Memsz)
		lo, hi := (end+trampSlot-1)&^(trampSlot-1), (end+pageSize-1)&^(pageSize-1)
		if !slices.ContainsFunc(maps, func(m procfs.Mapping) bool { return m.Executable() && m.Contains(lo) && hi <= m.End }) {
			continue
		}
		buf := make([]byte, hi-lo)
		if err := procfs.ReadMem(r.pid, lo, buf); err != nil {
			return nil, err
		}
		for o := 0; o+trampLen <= len(buf); o += trampSlot {
			b := buf[o : o+trampLen]
			if bytes.Count(b, []byte{0}) == trampLen || bytes.HasPrefix(b, ledger.PadBytes(0)[:6]) {
				slots = append(slots, lo+uint64(o))
			}
		}
	}
	if len(slots) == 0 {
		return nil, errors.New("no free bytes after the end of " + r.obj.Name + "'s executable segment")
	}
	return slots, nil
}

// trampTarget returns where a trampoline at addr jumps, or addr when addr
// does not hold one.
func trampTarget(pid int, addr uint64) uint64 {
	b := make([]byte, trampLen)
	if procfs.ReadMem(pid, addr, b) != nil || !bytes.HasPrefix(b, ledger.PadBytes(0)[:6]) {
		return addr
	}
	return binary.LittleEndian.Uint64(b[6:])
}
