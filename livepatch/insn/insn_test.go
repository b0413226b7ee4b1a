package insn

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		fn   []byte
		want Entry
		err  error
	}{
		// Debian 12's libc.so.6 and libcrypto.so.3, as installed.
		{"labs: jump splits neg", mustRead(t, "labs.bin"), Entry{Offset: 0, Covered: 6}, nil},
		{"atoi: sub then mov", mustRead(t, "atoi.bin"), Entry{Offset: 0, Covered: 9}, nil},
		{"OPENSSL_hexchar2int", mustRead(t, "hexchar2int.bin"), Entry{Offset: 0, Covered: 8}, nil},
		{"CRYPTO_memcmp after endbr64", mustRead(t, "crypto_memcmp.bin"), Entry{Offset: 4, Covered: 6}, nil},
		{"exactly 5 bytes", []byte{0xb8, 0x03, 0x00, 0x00, 0x00}, Entry{Covered: 5}, nil},
		{"return value only", []byte{0x31, 0xc0, 0xc3}, Entry{}, ErrTooShort},
		{"endbr64 and 4 bytes", []byte{0xf3, 0x0f, 0x1e, 0xfa, 0x31, 0xc0, 0xff, 0xc3}, Entry{}, ErrTooShort},
		{"empty", nil, Entry{}, ErrTooShort},
		// call *%rax; ret: the return address would be at +2.
		{"indirect call in the head", []byte{0xff, 0xd0, 0xc3, 0x90, 0x90, 0x90}, Entry{}, ErrUnrelocatable},
		// syscall; ret: a blocked thread would sit at +2.
		{"syscall in the head", []byte{0x0f, 0x05, 0xc3, 0x90, 0x90, 0x90}, Entry{}, ErrUnrelocatable},
		// call rel32 ending at +5: the return address is past the jump.
		{"call ending at the jump's end", []byte{0xe8, 0, 0, 0, 0, 0xc3}, Entry{Covered: 5}, nil},
		// xor eax,eax; inc eax; cmp eax,10; jne +2 (back into the head).
		{"loop into the head", []byte{0x31, 0xc0, 0xff, 0xc0, 0x83, 0xf8, 0x0a, 0x75, 0xf9, 0xc3}, Entry{}, ErrBranchInto},
		// The same loop back to the entry itself: it reaches the jump.
		{"loop to the entry", []byte{0x31, 0xc0, 0xff, 0xc0, 0x83, 0xf8, 0x0a, 0x75, 0xf7, 0xc3}, Entry{Covered: 7}, nil},
		// A forward jump past the head, and a branch to the byte after it.
		{"branch to the end of the head", []byte{0x31, 0xc0, 0xff, 0xc0, 0x83, 0xf8, 0x0a, 0x75, 0xfe, 0xc3}, Entry{Covered: 7}, nil},
		{"undecodable in the head", []byte{0x06, 0x90, 0x90, 0x90, 0x90, 0xc3}, Entry{}, ErrUndecodable},
		{"undecodable later", []byte{0x48, 0x89, 0xf8, 0x48, 0xf7, 0xd8, 0x06, 0xc3}, Entry{}, ErrUndecodable},
		{"truncated in the head", []byte{0x90, 0x90, 0x90, 0xb8, 0x01, 0x00}, Entry{}, ErrUndecodable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Check(tt.fn)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Check = %+v, %v; want error %v", got, err, tt.err)
			}
			if err != nil {
				var re *RefusedError
				if !errors.As(err, &re) || re.Error() == "" {
					t.Fatalf("error %v is not a *RefusedError", err)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("Check = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCheckHead_IgnoresTheRest(t *testing.T) {
	// The head of "undecodable later" and "loop into the head" is fine: only
	// Check sees the rest of the function.
	for _, fn := range [][]byte{
		{0x48, 0x89, 0xf8, 0x48, 0xf7, 0xd8, 0x06, 0xc3},
		{0x31, 0xc0, 0xff, 0xc0, 0x83, 0xf8, 0x0a, 0x75, 0xf9, 0xc3},
	} {
		if _, err := CheckHead(fn); err != nil {
			t.Errorf("CheckHead(% x) = %v", fn, err)
		}
	}
}

func FuzzCheck(f *testing.F) {
	ents, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range ents {
		if filepath.Ext(e.Name()) == ".bin" {
			f.Add(mustRead(f, e.Name()))
		}
	}
	f.Fuzz(func(t *testing.T, fn []byte) {
		e, err := Check(fn)
		h, herr := CheckHead(fn)
		if err != nil {
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RefusedError", err)
			}
			return
		}
		if herr != nil || h != e {
			t.Fatalf("Check = %+v but CheckHead = %+v, %v", e, h, herr)
		}
		if e.Offset != 0 && e.Offset != EndbrLen || e.Covered < JumpLen || e.Covered > maxInstLen+JumpLen-1 ||
			int(e.Offset)+e.Covered > len(fn) {
			t.Fatalf("Check(% x) = %+v", fn, e)
		}
	})
}

func TestTargets(t *testing.T) {
	// xor eax,eax; inc eax; cmp eax,10; jne +2; call +0x10 (out of range,
	// dropped); (bad 06); jmp +0 (to itself at 15)
	code := []byte{0x31, 0xc0, 0xff, 0xc0, 0x83, 0xf8, 0x0a, 0x75, 0xf9, 0xe8, 0x10, 0, 0, 0, 0x06, 0xeb, 0xfe}
	if got, want := Targets(code), []int{2, 15}; !slices.Equal(got, want) {
		t.Errorf("Targets = %v, want %v", got, want)
	}
}

func TestEnds(t *testing.T) {
	tests := []struct {
		name string
		code []byte
		want []int
	}{
		{"empty", nil, nil},
		{"mov eax, 1; xor eax, eax; ret", []byte{0xb8, 1, 0, 0, 0, 0x31, 0xc0, 0xc3}, []int{5, 7, 8}},
		{"jmp rel32 then nop", []byte{0xe9, 1, 2, 3, 4, 0x90}, []int{5, 6}},
		{"truncated jmp, then nops", []byte{0xe9, 0x90, 0x90}, []int{1, 2, 3}},
	}
	for _, tt := range tests {
		if got := Ends(tt.code); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Ends = %v, want %v", tt.name, got, tt.want)
		}
	}
}
