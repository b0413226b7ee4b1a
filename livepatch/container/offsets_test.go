package container_test

import (
	"errors"
	"strings"
	"testing"

	"ulp/livepatch/container"
	"ulp/livepatch/elfsym"
)

func TestCheckOffsets(t *testing.T) {
	target := []elfsym.Segment{{Vaddr: 0, Memsz: 0x1000}, {Vaddr: 0x1000, Memsz: 0x1000, Exec: true}, {Vaddr: 0x3000, Memsz: 0x100, Write: true}}
	patch := []elfsym.Segment{{Vaddr: 0, Memsz: 0x1000}, {Vaddr: 0x1000, Memsz: 0x800, Exec: true}, {Vaddr: 0x3000, Memsz: 0x40, Write: true}}
	pad := func(old, new uint64) container.Func {
		return container.Func{Old: "f", New: "g", OldOffset: old, NewOffset: new, Mechanism: container.MechPad}
	}
	entry := func(old, new uint64) container.Func {
		f := pad(old, new)
		f.Mechanism = container.MechEntry
		return f
	}
	ref := func(tgt, p uint64, tls bool) container.Ref {
		return container.Ref{TargetVar: "v", PatchRef: "r", TargetOffset: tgt, PatchOffset: p, TLS: tls}
	}
	tests := []struct {
		name  string
		funcs []container.Func
		refs  []container.Ref
		want  string // "" = valid
	}{
		{"valid", []container.Func{pad(0x1100, 0x1010), entry(0x1200, 0x1020)}, []container.Ref{ref(0x3010, 0x3000, false), ref(0x10, 0x3010, true)}, ""},
		{"old on data, entry mechanism", []container.Func{entry(0x3000, 0x1010)}, nil, "not all in one executable segment"},
		{"old pad before the segment", []container.Func{pad(0x1004, 0x1010)}, nil, "not all in one executable segment"},
		{"old jump past the segment", []container.Func{entry(0x1ffd, 0x1010)}, nil, "not all in one executable segment"},
		{"two functions one byte apart", []container.Func{entry(0x1200, 0x1010), entry(0x1201, 0x1020)}, nil, "overlap"},
		{"two pads 15 bytes apart", []container.Func{pad(0x1200, 0x1010), pad(0x120f, 0x1020)}, nil, "overlap"},
		{"same function twice", []container.Func{pad(0x1200, 0x1010), pad(0x1200, 0x1020)}, nil, "overlap"},
		{"new offset 0", []container.Func{pad(0x1100, 0)}, nil, "not in an executable segment of the livepatch"},
		{"new offset on data", []container.Func{pad(0x1100, 0x3000)}, nil, "not in an executable segment of the livepatch"},
		{"new offset past the end", []container.Func{pad(0x1100, 1<<62)}, nil, "not in an executable segment of the livepatch"},
		{"reference into code", nil, []container.Ref{ref(0x3010, 0x1010, false)}, "not in a writable segment"},
		{"reference straddles the end", nil, []container.Ref{ref(0x3010, 0x303c, false)}, "not in a writable segment"},
		{"tls index needs 16 bytes", nil, []container.Ref{ref(0x10, 0x3038, true)}, "not in a writable segment"},
		{"target variable outside", nil, []container.Ref{ref(0x9000, 0x3000, false)}, "not in a segment of libx.so"},
		{"unknown mechanism", []container.Func{{Old: "f", OldOffset: 0x1100, NewOffset: 0x1010}}, nil, "unknown mechanism"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &container.Spec{Kind: container.Apply, Target: container.Target{Name: "libx.so"}, Funcs: tt.funcs, Refs: tt.refs}
			err := s.CheckOffsets(target, patch)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckOffsets = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, container.ErrOffset) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckOffsets = %v, want %q", err, tt.want)
			}
			if s.CheckOffsets(nil, nil) != nil && !strings.Contains(tt.want, "overlap") && !strings.Contains(tt.want, "mechanism") {
				t.Errorf("without segments, only overlaps and mechanisms are checked")
			}
		})
	}
}
