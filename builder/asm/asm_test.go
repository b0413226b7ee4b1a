package asm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ulp/internal/testenv"
)

// resolver: data and lib_fn live in the library, kept_fn and .L labels in
// the patch, tls through the library's GOT, ext is bound by name.
func resolver(sym string, use Use) (Ref, error) {
	switch sym {
	case "data", "lib_fn":
		return Ref{Action: Slot, Slot: "__ulp_ref_" + sym}, nil
	case "tls":
		return Ref{Action: GOTSlot, Slot: "__ulp_got_tls"}, nil
	case "bad":
		return Ref{}, errors.New("cannot locate bad")
	}
	return Ref{Action: Keep}, nil
}

func TestRewrite(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // lines of the output, in order
		err      string
	}{
		{"call", "\tcall\tlib_fn@PLT", []string{"\tcall\t*__ulp_ref_lib_fn(%rip)"}, ""},
		{"tail call", "\tjmp\tlib_fn", []string{"\tjmp\t*__ulp_ref_lib_fn(%rip)"}, ""},
		{"conditional tail call", "\tjne\tlib_fn", []string{"\tjne\t__ulp_stub_lib_fn", "__ulp_stub_lib_fn:", "\tjmp\t*__ulp_ref_lib_fn(%rip)"}, ""},
		{"kept call", "\tcall\tkept_fn", []string{"\tcall\tkept_fn"}, ""},
		{"address", "\tleaq\tdata+8(%rip), %rdi", []string{"\tmovq\t__ulp_ref_data(%rip), %rdi", "\tleaq\t8(%rdi), %rdi"}, ""},
		{"got load", "\tmovq\tdata@GOTPCREL(%rip), %rax", []string{"\tmovq\t__ulp_ref_data(%rip), %rax"}, ""},
		{"load into its own register", "\tmovl\tdata+4(%rip), %eax", []string{"\tmovq\t__ulp_ref_data(%rip), %rax", "\tmovl\t4(%rax), %eax"}, ""},
		{"byte load keeps the rest of the register", "\tmovb\tdata(%rip), %al", []string{"\tleaq\t-128(%rsp), %rsp", "\t.cfi_adjust_cfa_offset 128", "\tpushq\t%r11", "\t.cfi_adjust_cfa_offset 8", "\tmovq\t__ulp_ref_data(%rip), %r11", "\tmovb\t(%r11), %al", "\tpopq\t%r11", "\t.cfi_adjust_cfa_offset -8", "\tleaq\t128(%rsp), %rsp", "\t.cfi_adjust_cfa_offset -128"}, ""},
		{"store with a scratch", "\tmovl\t%r11d, data(%rip)", []string{"\tpushq\t%r10", "\tmovq\t__ulp_ref_data(%rip), %r10", "\tmovl\t%r11d, (%r10)", "\tpopq\t%r10"}, ""},
		{"frame pointer CFA is not adjusted", "\t.cfi_startproc\n\t.cfi_def_cfa_register 6\n\taddl\t$1, data(%rip)", []string{"\tpushq\t%r11", "\tmovq\t__ulp_ref_data(%rip), %r11", "\taddl\t$1, (%r11)", "\tpopq\t%r11"}, ""},
		{"lock prefix", "\tlock addl\t$1, data(%rip)", []string{"\tlock addl\t$1, (%r11)"}, ""},
		{"indirect call through library data", "\tcall\t*data+16(%rip)", []string{"\tmovq\t__ulp_ref_data(%rip), %r11", "\tcall\t*16(%r11)"}, ""},
		{"tls initial exec", "\tmovq\ttls@gottpoff(%rip), %rax", []string{"\tmovq\t__ulp_got_tls(%rip), %rax", "\tmovq\t(%rax), %rax"}, ""},
		{"local label kept", "\tleaq\t.LC0(%rip), %rdi", []string{"\tleaq\t.LC0(%rip), %rdi"}, ""},
		{"globals hidden", "\t.globl\tf", []string{"\t.globl\tf", "\t.hidden\tf"}, ""},
		{"debug dropped", "\t.file 1 \"x.c\"\n\t.loc 1 2 3\n\t.section\t.debug_info,\"\",@progbits\n\t.long 0\n\t.text\n\tret", []string{"\t.text", "\tret"}, ""},
		{"stack operand refused", "\tpushq\tdata(%rip)", nil, "uses the stack pointer"},
		{"tls general dynamic refused", "\tleaq\ttls@tlsgd(%rip), %rdi", nil, "thread-local access"},
		{"absolute refused", "\tmovl\t$data, %eax", nil, "absolute address"},
		{"unlocated refused", "\tcall\tbad", nil, "cannot locate bad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Rewrite([]byte("\t.text\n"+tc.in+"\n"), Options{Resolve: resolver, Roots: []string{"f"}, Root: "__ulp_roots_0"})
			if err != nil {
				t.Fatal(err)
			}
			if tc.err != "" {
				err := errors.Join(res.Unsupported...)
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(string(res.Source), UnsupportedSymbol(0, 0)) {
					t.Fatalf("unsupported = %v, want %q and the marker", err, tc.err)
				}
				return
			}
			if len(res.Unsupported) > 0 {
				t.Fatal(errors.Join(res.Unsupported...))
			}
			out := string(res.Source)
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w+"\n")
				if i < 0 {
					t.Fatalf("output lacks %q after the lines before it:\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			if strings.Contains(out, ".loc") || strings.Contains(out, ".debug_") {
				t.Fatalf("debug information kept:\n%s", out)
			}
		})
	}
}

// TestRewrite_Assembles checks that the rewritten forms are valid input
// for the assembler.
func TestRewrite_Assembles(t *testing.T) {
	testenv.Require(t, testenv.CC) // gcc's assembler, binutils' as
	as, err := exec.LookPath("as")
	if err != nil {
		t.Fatal(err)
	}
	src := "\t.text\n\t.globl f\n\t.type f, @function\nf:\n\t.cfi_startproc\n\tcall\tlib_fn@PLT\n\tjne\tlib_fn\n\tleaq\tdata+8(%rip), %rdi\n\tmovl\tdata+4(%rip), %eax\n\tmovb\tdata(%rip), %al\n\tlock addl\t$1, data(%rip)\n\tcall\t*data+16(%rip)\n\tmovq\ttls@gottpoff(%rip), %rax\n\tret\n\t.cfi_endproc\n\t.size f, .-f\n"
	res, err := Rewrite([]byte(src), Options{Resolve: resolver, Roots: []string{"f"}, Root: "__ulp_roots_0"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "x.s")
	if err := os.WriteFile(p, res.Source, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(as, "--64", "-o", filepath.Join(dir, "x.o"), p).CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s\n%s", err, out, res.Source)
	}
}
