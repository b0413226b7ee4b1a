package container

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

func sampleApply() *Spec {
	return &Spec{
		Kind:   Apply,
		ID:     ID{1, 2, 3, 31: 0xff},
		Target: Target{Name: "libc.so.6", BuildID: []byte{0xde, 0xad, 0xbe, 0xef, 0x01}},
		Funcs: []Func{
			{Old: "foo", New: "foo_lp", OldOffset: 0x1139, NewOffset: 0x1100, Mechanism: MechPad},
			{Old: "_ZL4normPd", New: "_Z8norm_lpPd", OldOffset: 1 << 40, NewOffset: 0xffffffffffffffff, Mechanism: MechPad, EntryOffset: 4},
			{Old: "labs", New: "labs_lp", OldOffset: 0x3f410, NewOffset: 0x1120, Mechanism: MechEntry},
			{Old: "CRYPTO_memcmp", New: "memcmp_lp", OldOffset: 0x240080, NewOffset: 0x1140, Mechanism: MechEntry, EntryOffset: 4},
		},
		Refs: []Ref{
			{TargetVar: "counter", PatchRef: "counter_ref", TargetOffset: 0x4010, PatchOffset: 0x3ff0},
			{TargetVar: "tlsvar", PatchRef: "tlsvar_idx", TargetOffset: 8, PatchOffset: 0x3fe0, TLS: true},
		},
	}
}

func TestMarshal_RoundTrip(t *testing.T) {
	long := strings.Repeat("x", MaxSymbol)
	tests := []struct {
		name string
		spec *Spec
	}{
		{"apply", sampleApply()},
		{"revert", &Spec{Kind: Revert, ID: ID{9}, Target: Target{Name: "a.out", BuildID: bytes.Repeat([]byte{7}, MaxBuildID)}}},
		{"long names", &Spec{Kind: Apply, Target: Target{Name: strings.Repeat("n", MaxName), BuildID: []byte{1}},
			Funcs: []Func{{Old: long, New: long, Mechanism: MechPad}}, Refs: []Ref{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			want := *tt.spec
			if want.Kind == Apply && want.Refs == nil {
				want.Refs = []Ref{}
			}
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, &want)
			}
		})
	}
}

func TestUnmarshal_EveryTruncationFails(t *testing.T) {
	b, err := Marshal(sampleApply())
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) {
		spec, err := Unmarshal(b[:n])
		var fe *FormatError
		if !errors.As(err, &fe) || spec != nil {
			t.Fatalf("Unmarshal(first %d of %d bytes) = %v, %v; want nil, *FormatError", n, len(b), spec, err)
		}
	}
}

func TestUnmarshal_Hostile(t *testing.T) {
	good, err := Marshal(sampleApply())
	if err != nil {
		t.Fatal(err)
	}
	patch := func(off int, bs ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], bs)
		return b
	}
	nameOff := headerSize + 1 + 5 // after the build-id
	funcCountOff := nameOff + 2 + len("libc.so.6")
	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "truncated magic"},
		{"bad magic", patch(0, 'E', 'L', 'F'), "bad magic"},
		{"version", patch(4, 2), "unsupported version"},
		{"kind", patch(6, 3), "unknown kind"},
		{"flags", patch(7, 1), "unknown flags"},
		{"huge func count", patch(funcCountOff, 0xff, 0xff, 0xff, 0xff), "function count exceeds payload"},
		{"name too long", patch(nameOff, 0xff, 0xff), "target name too long"},
		{"trailing", append(bytes.Clone(good), 0), "trailing bytes"},
		{"zero build-id", append(append(bytes.Clone(good[:headerSize]), 0), good[nameOff:]...), "invalid spec"},
		{"bad mechanism", func() []byte {
			s := sampleApply()
			b, _ := Marshal(s)
			i := bytes.Index(b, []byte("foo_lp")) + len("foo_lp") + 16
			b[i] = 9
			return b
		}(), "unknown mechanism"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := Unmarshal(tt.data)
			if spec != nil || err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Unmarshal = %v, %v; want error containing %q", spec, err, tt.msg)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Spec)
		msg    string
	}{
		{"ok", func(*Spec) {}, ""},
		{"kind", func(s *Spec) { s.Kind = 0 }, "unknown kind"},
		{"no build-id", func(s *Spec) { s.Target.BuildID = nil }, "build-id has 0 bytes"},
		{"long build-id", func(s *Spec) { s.Target.BuildID = make([]byte, MaxBuildID+1) }, "build-id has 256 bytes"},
		{"path name", func(s *Spec) { s.Target.Name = "/lib/libc.so.6" }, "not a file basename"},
		{"empty name", func(s *Spec) { s.Target.Name = "" }, "target name: empty"},
		{"revert with funcs", func(s *Spec) { s.Kind = Revert }, "revert spec has no functions"},
		{"no funcs", func(s *Spec) { s.Funcs = nil }, "no function to replace"},
		{"dup func", func(s *Spec) { s.Funcs = append(s.Funcs, s.Funcs[0]) }, `"foo" replaced twice`},
		{"dup func quoted", func(s *Spec) { s.Funcs[0].Old = "f\nulp: fake"; s.Funcs = append(s.Funcs, s.Funcs[0]) }, `"f\nulp: fake" replaced twice`}, // one line
		{"entry", func(s *Spec) { s.Funcs[0].EntryOffset = 2 }, "entry offset 2"},
		{"nul", func(s *Spec) { s.Refs[0].PatchRef = "a\x00b" }, "contains NUL"},
		{"long symbol", func(s *Spec) { s.Funcs[0].New = strings.Repeat("x", MaxSymbol+1) }, "at most 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sampleApply()
			tt.modify(s)
			err := s.Validate()
			if tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Validate = %v, want %q", err, tt.msg)
			}
			if _, merr := Marshal(s); merr == nil {
				t.Fatal("Marshal accepted an invalid spec")
			}
		})
	}
}

func TestSpec_LogValue(t *testing.T) {
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "patch", sampleApply())
	want := "patch.kind=apply patch.id=010203" + strings.Repeat("0", 56) + "ff patch.target=libc.so.6 patch.functions=4 patch.references=2"
	if !strings.Contains(b.String(), want) {
		t.Errorf("log = %q, want %q", b.String(), want)
	}
}

func TestLabels(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"fixes CVE-2024-2961 and bsc#1200316, jsc#SLE-20049", []string{"CVE-2024-2961", "bsc#1200316", "jsc#SLE-20049"}},
		{"cve-2023-4911 BSC#42 boo#7 Jsc#ped-1 cve-2023-4911", []string{"CVE-2023-4911", "bsc#42", "boo#7", "jsc#PED-1"}},
		{"CVE-24-1 bsc# xcve-2024-1234", nil},
	}
	for _, tt := range tests {
		if got := Labels(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Labels(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range []*Spec{sampleApply(), {Kind: Revert, Target: Target{Name: "x", BuildID: []byte{1}}}} {
		b, err := Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Unmarshal(data)
		if err != nil {
			if spec != nil {
				t.Fatal("non-nil spec with an error")
			}
			return
		}
		again, err := Marshal(spec)
		if err != nil {
			t.Fatalf("decoded spec does not marshal: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatal("decode/encode is not the identity")
		}
	})
}

func BenchmarkUnmarshal(b *testing.B) {
	data, err := Marshal(sampleApply())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMechanism_String(t *testing.T) {
	for m, want := range map[Mechanism]string{MechPad: "pad", MechEntry: "entry", 9: "mechanism(9)"} {
		if got := m.String(); got != want {
			t.Errorf("%d: %q, want %q", m, got, want)
		}
	}
}
