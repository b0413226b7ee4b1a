package container

import (
	"fmt"
	"log/slog"
)

// Kind tells what a metadata section describes.
type Kind uint8

// The section kinds: .ulp holds an Apply spec, .ulp.rev a Revert spec.
const (
	Apply  Kind = 1
	Revert Kind = 2
)

func (k Kind) String() string {
	switch k {
	case Apply:
		return "apply"
	case Revert:
		return "revert"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Section names inside a livepatch container.
const (
	SectionApply    = ".ulp"
	SectionRevert   = ".ulp.rev"
	SectionComments = ".ulp.comments"
)

// ID identifies a patch: a SHA-256 content hash (see docs/container-format.md).
type ID [32]byte

// String returns the ID as 64 lowercase hex digits.
func (id ID) String() string { return fmt.Sprintf("%x", id[:]) }

// Target names the object a patch applies to.
type Target struct {
	Name    string // basename of the library, or of the executable
	BuildID []byte // GNU build-id of the target, any length
}

// Mechanism says how calls to an old function are redirected.
type Mechanism uint8

// Redirection mechanisms. The numbers are part of the .ulp format.
const (
	// MechPad uses the pad of -fpatchable-function-entry=16,14: 14 NOP
	// bytes before the entry are rewritten into an indirect jump, and the
	// 2 NOP bytes at OldOffset+EntryOffset into a short jump back to it.
	MechPad Mechanism = 1
	// MechEntry is for functions without the pad (distribution builds):
	// the 5 bytes at OldOffset+EntryOffset are overwritten with a
	// `jmp rel32` (e9) to the replacement, or to a trampoline within reach
	// of it; the packer decoded the function and found it safe to do so.
	MechEntry Mechanism = 2
)

func (m Mechanism) String() string {
	switch m {
	case MechPad:
		return "pad"
	case MechEntry:
		return "entry"
	}
	return fmt.Sprintf("mechanism(%d)", uint8(m))
}

// Func is one function replacement.
type Func struct {
	Old       string // symbol name in the target
	New       string // symbol name in the livepatch
	OldOffset uint64 // st_value of Old in the target file (offset from the load bias)
	NewOffset uint64 // st_value of New in the livepatch file
	// Mechanism is how Old is redirected; recorded at pack time from the
	// target's bytes.
	Mechanism Mechanism
	// EntryOffset is the byte offset, from OldOffset, of the redirected
	// bytes (the two NOP bytes of the pad, or the 5 bytes of the entry
	// jump): 0, or 4 after an endbr64.
	EntryOffset uint8
}

// Ref is a data reference filled in at apply time: the livepatch variable at
// PatchOffset receives the address of the target variable at TargetOffset
// (or, when TLS, a tls_index for it).
type Ref struct {
	TargetVar    string
	PatchRef     string
	TargetOffset uint64
	PatchOffset  uint64
	TLS          bool
}

// Spec is the decoded description of a livepatch container. A Spec is plain
// data: reading one never touches a process.
type Spec struct {
	Kind     Kind
	ID       ID
	Target   Target
	Funcs    []Func // empty in a Revert spec
	Refs     []Ref  // empty in a Revert spec
	Comments string // free text from the description's '!' lines
	Labels   []string
	// Libpulp is set for a spec read from a section in SUSE libpulp's
	// format: every function uses the pad, with EntryOffset 0 as read; the
	// trigger reads from the target whether an endbr64 comes first.
	Libpulp bool
}

// LogValue makes a Spec log as its kind, id, target and counts only.
func (s *Spec) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("kind", s.Kind.String()),
		slog.String("id", s.ID.String()),
		slog.String("target", s.Target.Name),
		slog.Int("functions", len(s.Funcs)),
		slog.Int("references", len(s.Refs)),
	)
}
