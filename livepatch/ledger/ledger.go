package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"ulp/livepatch/container"
	"ulp/livepatch/insn"
)

// Redirect sends calls of the function at Old to the function at New (both
// addresses in the target process).
type Redirect struct {
	Old uint64
	New uint64
}

// Patch is one applied livepatch.
type Patch struct {
	ID        container.ID
	Container string // path of the container as loaded by the process
	Target    string // basename of the patched object ("" never: the executable's basename)
	BuildID   []byte // build-id of the patched object
	AppliedAt time.Time
	Labels    []string
	Redirects []Redirect
}

// Entry is one replacement on a function's stack.
type Entry struct {
	Patch container.ID
	New   uint64 // address of the replacement function
}

// Stack is the state of one patched function: its original bytes and the
// replacements applied to it, newest last. The last entry is the active one.
type Stack struct {
	Addr      uint64              // the function's entry address
	Mechanism container.Mechanism // container.MechPad or container.MechEntry
	// EntryOffset is the offset of the redirected entry bytes from Addr: 0,
	// or 4 after an endbr64.
	EntryOffset uint8
	// Orig holds the original bytes at Addr+EntryOffset, restored when the
	// last entry is reverted: 2 bytes for the pad mechanism, the 5 bytes
	// the jump overwrote for the entry mechanism.
	Orig    []byte
	Entries []Entry
}

// Top returns the active (newest) entry of s.
func (s *Stack) Top() Entry { return s.Entries[len(s.Entries)-1] }

// Ledger is the record of the patches applied to one process. The zero
// value is an empty ledger. Patches are in the order they were applied;
// Stacks are sorted by Addr.
type Ledger struct {
	Patches []Patch
	Stacks  []Stack
}

// Errors returned by the planning functions and by Decode; they are wrapped
// with details, test them with errors.Is.
var (
	// ErrAlreadyApplied: a patch with the same id is in the ledger.
	ErrAlreadyApplied = errors.New("patch already applied")
	// ErrNotApplied: Revert of a patch id that is not in the ledger.
	ErrNotApplied = errors.New("patch not applied")
	// ErrNoPatches: RevertAll found no patch on the named target.
	ErrNoPatches = errors.New("no patches on target")
	// ErrInvalid: a malformed patch (no redirects, zero or duplicate addresses, ...).
	ErrInvalid = errors.New("invalid patch")
	// ErrFormat: the ledger bytes are malformed.
	ErrFormat = errors.New("malformed ledger")
	// ErrTooLarge: the encoded ledger does not fit the format's limits.
	ErrTooLarge = errors.New("ledger too large")
)

// NotPatchableError reports a function whose bytes allow neither mechanism:
// no pad, and first instructions that a jump cannot overwrite.
type NotPatchableError struct {
	Addr uint64
	Got  []byte // the bytes read from Addr-14
	Why  string
}

func (e *NotPatchableError) Error() string {
	return fmt.Sprintf("function at %#x is not livepatchable: %s (bytes from entry-14: % x)", e.Addr, e.Why, e.Got)
}

// MismatchError reports that the code of a function differs from what the
// ledger says was written there: something else changed it, or the ledger
// is stale. Nothing is planned on top of such a function.
type MismatchError struct {
	Addr uint64
	Want []byte
	Got  []byte
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("code at %#x differs from the ledger: want % x, got % x", e.Addr, e.Want, e.Got)
}

// Clone returns a deep copy of l.
func (l *Ledger) Clone() *Ledger {
	c := &Ledger{
		Patches: make([]Patch, len(l.Patches)),
		Stacks:  make([]Stack, len(l.Stacks)),
	}
	for i, p := range l.Patches {
		p.BuildID = slices.Clone(p.BuildID)
		p.Labels = slices.Clone(p.Labels)
		p.Redirects = slices.Clone(p.Redirects)
		c.Patches[i] = p
	}
	for i, s := range l.Stacks {
		s.Orig = slices.Clone(s.Orig)
		s.Entries = slices.Clone(s.Entries)
		c.Stacks[i] = s
	}
	return c
}

// Patch returns the applied patch with the given id, or nil.
func (l *Ledger) Patch(id container.ID) *Patch {
	for i := range l.Patches {
		if l.Patches[i].ID == id {
			return &l.Patches[i]
		}
	}
	return nil
}

// Stack returns the stack of the function at addr, or nil.
func (l *Ledger) Stack(addr uint64) *Stack {
	i, ok := slices.BinarySearchFunc(l.Stacks, addr, func(s Stack, a uint64) int {
		return cmpU64(s.Addr, a)
	})
	if !ok {
		return nil
	}
	return &l.Stacks[i]
}

// Active reports the address a call of the function at addr currently
// reaches: the newest replacement, or addr itself when it is not patched.
func (l *Ledger) Active(addr uint64) uint64 {
	if s := l.Stack(addr); s != nil {
		return s.Top().New
	}
	return addr
}

// Validate checks the internal consistency of l: unique patch ids, stacks
// sorted by unique addresses, every entry naming an applied patch, known
// mechanisms and offsets, every redirect recorded on its stack.
func (l *Ledger) Validate() error {
	ids := make(map[container.ID]bool, len(l.Patches))
	for _, p := range l.Patches {
		if ids[p.ID] {
			return fmt.Errorf("%w: patch %x listed twice", ErrFormat, p.ID[:8])
		}
		ids[p.ID] = true
	}
	for i := range l.Stacks {
		s := &l.Stacks[i]
		if i > 0 && l.Stacks[i-1].Addr >= s.Addr {
			return fmt.Errorf("%w: stacks not sorted at %#x", ErrFormat, s.Addr)
		}
		var origLen int
		switch s.Mechanism {
		case container.MechPad:
			origLen = entryLen
		case container.MechEntry:
			origLen = jumpLen
		default:
			return fmt.Errorf("%w: function %#x: unknown %v", ErrFormat, s.Addr, s.Mechanism)
		}
		if s.EntryOffset != 0 && s.EntryOffset != insn.EndbrLen {
			return fmt.Errorf("%w: function %#x: entry offset %d", ErrFormat, s.Addr, s.EntryOffset)
		}
		if len(s.Orig) != origLen {
			return fmt.Errorf("%w: function %#x: %d original bytes", ErrFormat, s.Addr, len(s.Orig))
		}
		if s.Addr < padLen {
			return fmt.Errorf("%w: function address %#x", ErrFormat, s.Addr)
		}
		if len(s.Entries) == 0 {
			return fmt.Errorf("%w: function %#x: empty stack", ErrFormat, s.Addr)
		}
		for _, e := range s.Entries {
			if !ids[e.Patch] {
				return fmt.Errorf("%w: function %#x: entry of unknown patch %x", ErrFormat, s.Addr, e.Patch[:8])
			}
		}
	}
	for _, p := range l.Patches {
		for _, r := range p.Redirects {
			s := l.Stack(r.Old)
			if s == nil || !slices.Contains(s.Entries, Entry{Patch: p.ID, New: r.New}) {
				return fmt.Errorf("%w: patch %x: redirect %#x not on its stack", ErrFormat, p.ID[:8], r.Old)
			}
		}
	}
	return nil
}

// Equal reports whether l and m hold the same patches and stacks.
func (l *Ledger) Equal(m *Ledger) bool {
	return slices.EqualFunc(l.Patches, m.Patches, func(a, b Patch) bool {
		return a.ID == b.ID && a.Container == b.Container && a.Target == b.Target &&
			bytes.Equal(a.BuildID, b.BuildID) && a.AppliedAt.Equal(b.AppliedAt) &&
			slices.Equal(a.Labels, b.Labels) && slices.Equal(a.Redirects, b.Redirects)
	}) && slices.EqualFunc(l.Stacks, m.Stacks, func(a, b Stack) bool {
		return a.Addr == b.Addr && a.Mechanism == b.Mechanism && a.EntryOffset == b.EntryOffset &&
			bytes.Equal(a.Orig, b.Orig) && slices.Equal(a.Entries, b.Entries)
	})
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
