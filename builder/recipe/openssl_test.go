package recipe_test

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ulp/builder/debiantest"
	"ulp/builder/recipe"
)

func opensslRecipe(t *testing.T, lib string) *recipe.OpenSSL {
	t.Helper()
	tree := debiantest.Source(t, "openssl", debiantest.OpenSSLOld)
	r, err := recipe.NewOpenSSL(tree, lib)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOpenSSL_CommandIsDebiansSharedBuild(t *testing.T) {
	r := opensslRecipe(t, "libcrypto.so.3")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd, err := r.Command(ctx, "crypto/asn1/a_mbstr.c")
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Dir != filepath.Join(r.Root(), "build_shared") {
		t.Errorf("Dir = %s, want the tree's build_shared", cmd.Dir)
	}
	for _, want := range []string{
		"-c", "../crypto/asn1/a_mbstr.c", "-fPIC", "-O2", "-g",
		"-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", // dpkg-buildflags
		"-fzero-call-used-regs=used-gpr", "-DOPENSSL_TLS_SECURITY_LEVEL=2", // the debian-amd64 target
		"-ffile-prefix-map=" + r.Root() + "=.", `-DOPENSSLDIR="/usr/lib/ssl"`,
	} {
		if !slices.Contains(cmd.Args, want) {
			t.Errorf("command lacks %q: %q", want, cmd.Args)
		}
	}
	for _, a := range cmd.Args {
		if a == "-o" || strings.HasPrefix(a, "-M") {
			t.Errorf("command keeps output flag %q", a)
		}
	}
	// A second recipe on the same tree reuses the configured folder.
	again, err := recipe.NewOpenSSL(r.Root(), "/usr/lib/x86_64-linux-gnu/libcrypto.so.3")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd2, err := again.Command(ctx, "crypto/asn1/a_mbstr.c")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cmd.Args, cmd2.Args) {
		t.Errorf("second command differs:\n%q\n%q", cmd.Args, cmd2.Args)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a configured tree took %v to give a command: the stamp was not reused", d)
	}
}

// TestOpenSSL_ObjectsMatchStockLibrary compiles translation units with the
// recipe's commands and finds each of their code sections, byte for byte
// outside relocations, exactly once in Debian's stripped library, at the
// place its exported functions' dynamic symbols say.
func TestOpenSSL_ObjectsMatchStockLibrary(t *testing.T) {
	stock := debiantest.LibDir(debiantest.Extract(t, "libssl3", debiantest.OpenSSLOld))
	for _, tc := range []struct{ lib, file string }{
		{"libcrypto.so.3", "crypto/asn1/a_mbstr.c"},
		{"libcrypto.so.3", "crypto/cms/cms_pwri.c"},
		{"libcrypto.so.3", "providers/implementations/ciphers/cipher_aes_ocb.c"}, // through libdefault.a
		{"libssl.so.3", "ssl/ssl_ciph.c"},
	} {
		t.Run(tc.lib+"/"+filepath.Base(tc.file), func(t *testing.T) {
			r := opensslRecipe(t, tc.lib)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd, err := r.Command(ctx, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "unit.o")
			c := exec.CommandContext(ctx, cmd.Args[0], append(cmd.Args[1:], "-o", out)...)
			c.Dir = cmd.Dir
			if b, err := c.CombinedOutput(); err != nil {
				t.Fatalf("compile: %v\n%s", err, b)
			}
			matchObject(t, out, filepath.Join(stock, tc.lib))
		})
	}
}

func matchObject(t *testing.T, objPath, libPath string) {
	t.Helper()
	lib, err := elf.Open(libPath)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	text := lib.Section(".text")
	libText, err := text.Data()
	if err != nil {
		t.Fatal(err)
	}
	exports := map[string]uint64{}
	dyn, _ := lib.DynamicSymbols()
	for _, s := range dyn {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			exports[s.Name] = s.Value
		}
	}
	o, err := elf.Open(objPath)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	syms, err := o.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for i, sec := range o.Sections {
		if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR == 0 || sec.Size == 0 {
			continue
		}
		code, err := sec.Data()
		if err != nil {
			t.Fatal(err)
		}
		mask := relocMask(t, o, i, len(code))
		hits := maskedFind(libText, code, mask)
		if len(hits) != 1 {
			t.Errorf("section %s (%d bytes) found %d times in %s", sec.Name, len(code), len(hits), libPath)
			continue
		}
		base := text.Addr + uint64(hits[0])
		for _, s := range syms {
			if int(s.Section) != i || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
				continue
			}
			matched++
			if want, ok := exports[s.Name]; ok && elf.ST_BIND(s.Info) == elf.STB_GLOBAL && base+s.Value != want {
				t.Errorf("%s is at %#x in the match, the library exports it at %#x", s.Name, base+s.Value, want)
			}
		}
	}
	if matched == 0 {
		t.Fatalf("no function of %s matched", objPath)
	}
	t.Logf("%d functions of %s found in %s", matched, filepath.Base(objPath), filepath.Base(libPath))
}

// relocMask marks the bytes of section sec that relocations will fill.
func relocMask(t *testing.T, o *elf.File, sec, n int) []bool {
	mask := make([]bool, n)
	for _, rs := range o.Sections {
		if rs.Type != elf.SHT_RELA || int(rs.Info) != sec {
			continue
		}
		b, err := rs.Data()
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+24 <= len(b); off += 24 {
			at := int(o.ByteOrder.Uint64(b[off:]))
			from, to := at, at+4
			switch elf.R_X86_64(o.ByteOrder.Uint64(b[off+8:]) & 0xffffffff) {
			case elf.R_X86_64_64:
				to = at + 8
			case elf.R_X86_64_GOTPCRELX:
				from = at - 2 // the linker may relax call/jmp *GOT(%rip) into a direct call
			case elf.R_X86_64_REX_GOTPCRELX:
				from = at - 3 // and mov GOT(%rip) into lea (REX prefix, opcode, ModRM)
			}
			for k := max(from, 0); k < to && k < n; k++ {
				mask[k] = true
			}
		}
	}
	return mask
}

// maskedFind returns every offset of hay where code occurs, ignoring the
// masked bytes.
func maskedFind(hay, code []byte, mask []bool) []int {
	first := 0
	for first < len(code) && mask[first] {
		first++
	}
	end := first
	for end < len(code) && !mask[end] {
		end++
	}
	anchor := code[first:end]
	var hits []int
	for pos := 0; ; {
		i := bytes.Index(hay[pos:], anchor)
		if i < 0 {
			return hits
		}
		start := pos + i - first
		pos += i + 1
		if start < 0 || start+len(code) > len(hay) {
			continue
		}
		ok := true
		for k := range code {
			if !mask[k] && hay[start+k] != code[k] {
				ok = false
				break
			}
		}
		if ok {
			hits = append(hits, start)
		}
	}
}

func TestOpenSSL_Refusals(t *testing.T) {
	r := opensslRecipe(t, "libcrypto.so.3")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, tc := range []struct{ file, want string }{
		{"apps/openssl.c", "not compiled into libcrypto.so.3"},
		{"ssl/ssl_lib.c", "not compiled into libcrypto.so.3"},
		{"../etc/passwd", "not a clean path"},
		{"/etc/passwd", "not a clean path"},
		{"crypto/./asn1/a_mbstr.c", "not a clean path"},
	} {
		if _, err := r.Command(ctx, tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Command(%q) = %v, want an error saying %q", tc.file, err, tc.want)
		}
	}
	other, err := recipe.NewOpenSSL(r.Root(), "libfoo.so.1") // checked against the Makefile on first use
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Command(ctx, "crypto/asn1/a_mbstr.c"); err == nil || !strings.Contains(err.Error(), "links no libfoo.so.1") {
		t.Errorf("a library the tree does not link: %v", err)
	}
	upstream := t.TempDir()
	for _, f := range []string{"Configure", "VERSION.dat", "include/openssl/opensslv.h.in"} {
		os.MkdirAll(filepath.Dir(filepath.Join(upstream, f)), 0o755)
		if err := os.WriteFile(filepath.Join(upstream, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := recipe.NewOpenSSL(upstream, "libcrypto.so.3"); err == nil || !strings.Contains(err.Error(), "no debian/rules") {
		t.Errorf("a tree without Debian's packaging: %v", err)
	}
	if _, err := recipe.NewOpenSSL(t.TempDir(), "libcrypto.so.3"); err == nil || !strings.Contains(err.Error(), "not an OpenSSL source tree") {
		t.Errorf("an empty folder: %v", err)
	}
}
