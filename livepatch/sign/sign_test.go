package sign_test

import (
	"bytes"
	"crypto/ed25519"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"ulp/livepatch/container"
	"ulp/livepatch/sign"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// policyDir writes pubs as *.pub files into a fresh folder.
func policyDir(t *testing.T, pubs ...ed25519.PublicKey) string {
	t.Helper()
	dir := t.TempDir()
	for i, pub := range pubs {
		b, err := sign.MarshalPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))+".pub"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustPolicy(t *testing.T, pubs ...ed25519.PublicKey) *sign.Policy {
	t.Helper()
	p, err := sign.LoadPolicy(policyDir(t, pubs...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func verify(p *sign.Policy, b []byte) error {
	_, err := p.Verify(bytes.NewReader(b), int64(len(b)))
	return err
}

func TestSign_RoundTrip(t *testing.T) {
	in := readFile(t, "unsigned.so")
	pub, priv := newKey(t)
	out, err := sign.Sign(in, priv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.Check(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		t.Fatalf("Check of a freshly signed file: %v", err)
	}
	if !bytes.Equal(s.Key, pub) {
		t.Errorf("signature names key %x, want %x", s.Key, pub)
	}
	if name, err := mustPolicy(t, pub).Verify(bytes.NewReader(out), int64(len(out))); err != nil || name != "a.pub" {
		t.Errorf("Verify = %q, %v; want a.pub, nil", name, err)
	}
	// Still the same container, and the same loaded image.
	cin, err := container.Read(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	cout, err := container.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("signed file is no longer a container: %v", err)
	}
	if cin.Apply.ID != cout.Apply.ID {
		t.Errorf("patch id changed by signing")
	}
	if a, b := loadImage(t, in), loadImage(t, out); !bytes.Equal(a, b) {
		t.Errorf("signing changed the loaded image")
	}

	// Signing again with another key replaces the signature in place.
	pub2, priv2 := newKey(t)
	again, err := sign.Sign(out, priv2)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(out) {
		t.Errorf("re-signing changed the size from %d to %d", len(out), len(again))
	}
	if s, err := sign.Check(bytes.NewReader(again), int64(len(again))); err != nil || !bytes.Equal(s.Key, pub2) {
		t.Errorf("re-signed: %v", err)
	}
	if err := verify(mustPolicy(t, pub), again); !errors.Is(err, sign.ErrUntrusted) {
		t.Errorf("re-signed by another key, old policy: err = %v, want ErrUntrusted", err)
	}
	// Deterministic: Ed25519 signatures do not depend on randomness.
	if out2, _ := sign.Sign(in, priv); !bytes.Equal(out, out2) {
		t.Errorf("signing twice gave different bytes")
	}
}

// loadImage returns the bytes of every PT_LOAD segment, past the ELF
// header (whose e_shoff and e_shnum change with any new section).
func loadImage(t *testing.T, b []byte) []byte {
	t.Helper()
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var img []byte
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		img = append(img, b[max(p.Off, 64):p.Off+p.Filesz]...)
	}
	return img
}

func TestVerify_TamperedByteRefused(t *testing.T) {
	signed := readFile(t, "signed.so")
	pub, err := sign.ParsePublicKey(readFile(t, "test.pub"))
	if err != nil {
		t.Fatal(err)
	}
	p := mustPolicy(t, pub)
	if err := verify(p, signed); err != nil {
		t.Fatalf("untouched: %v", err)
	}
	// Every byte of the file, the signature section's included: flipping
	// any one of them must be refused.
	for off := range signed {
		b := bytes.Clone(signed)
		b[off] ^= 0x01
		if err := verify(p, b); err == nil {
			t.Fatalf("byte %#x flipped: accepted", off)
		}
	}
	// Appending or truncating is refused too.
	if err := verify(p, append(bytes.Clone(signed), 0)); err == nil {
		t.Error("appended byte: accepted")
	}
	if err := verify(p, signed[:len(signed)-1]); err == nil {
		t.Error("truncated: accepted")
	}
}

func TestVerify_Refusals(t *testing.T) {
	signed := readFile(t, "signed.so")
	testPub, err := sign.ParsePublicKey(readFile(t, "test.pub"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newKey(t)
	// A signature section whose key was swapped for another's: the
	// signature no longer matches.
	swapped := bytes.Clone(signed)
	off := bytes.Index(swapped, []byte("ULPS"))
	copy(swapped[off+8:], other)
	tests := []struct {
		name   string
		policy *sign.Policy
		file   []byte
		want   error
	}{
		{"unsigned", mustPolicy(t, testPub), readFile(t, "unsigned.so"), sign.ErrUnsigned},
		{"wrong key", mustPolicy(t, other), signed, sign.ErrUntrusted},
		{"empty policy", mustPolicy(t), signed, sign.ErrUntrusted},
		{"key swapped in the section", mustPolicy(t, other, testPub), swapped, sign.ErrBadSignature},
		{"not ELF", mustPolicy(t, testPub), []byte("hello"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verify(tt.policy, tt.file)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var fe *sign.FormatError
			if tt.want == nil && !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FormatError", err)
			}
		})
	}
}

func TestParseSignature(t *testing.T) {
	pub, _ := newKey(t)
	good := (&sign.Signature{Key: pub, Sig: make([]byte, ed25519.SignatureSize)}).Marshal()
	s, err := sign.ParseSignature(good)
	if err != nil || !bytes.Equal(s.Marshal(), good) {
		t.Fatalf("round trip: %v", err)
	}
	for _, tt := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:len(b)-1] }},
		{"long", func(b []byte) []byte { return append(b, 0) }},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"version", func(b []byte) []byte { b[4] = 2; return b }},
		{"algorithm", func(b []byte) []byte { b[6] = 9; return b }},
		{"flags", func(b []byte) []byte { b[7] = 1; return b }},
		{"empty", func([]byte) []byte { return nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var fe *sign.FormatError
			if _, err := sign.ParseSignature(tt.edit(bytes.Clone(good))); !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *FormatError", err)
			}
		})
	}
}

func TestKeys_RoundTripAndRejects(t *testing.T) {
	pub, priv := newKey(t)
	kb, err := sign.MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := sign.MarshalPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := sign.ParsePrivateKey(kb); err != nil || !k.Equal(priv) {
		t.Errorf("private key round trip: %v", err)
	}
	if k, err := sign.ParsePublicKey(pb); err != nil || !k.Equal(pub) {
		t.Errorf("public key round trip: %v", err)
	}
	for name, b := range map[string][]byte{
		"public as private": pb,
		"garbage":           []byte("not a key"),
		"two blocks":        append(bytes.Clone(kb), kb...),
	} {
		if _, err := sign.ParsePrivateKey(b); !errors.Is(err, sign.ErrKeyFormat) {
			t.Errorf("%s: ParsePrivateKey err = %v, want ErrKeyFormat", name, err)
		}
	}
	if _, err := sign.ParsePublicKey(kb); !errors.Is(err, sign.ErrKeyFormat) {
		t.Errorf("private as public: err = %v, want ErrKeyFormat", err)
	}
	if fp := sign.Fingerprint(pub); len(fp) != len("SHA256:")+43 {
		t.Errorf("fingerprint %q", fp)
	}
}

func TestLoadPolicy_Errors(t *testing.T) {
	pub, _ := newKey(t)
	if _, err := sign.LoadPolicy(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing folder: err = %v, want fs.ErrNotExist", err)
	}
	bad := policyDir(t, pub)
	os.WriteFile(filepath.Join(bad, "z.pub"), []byte("garbage"), 0o644)
	if _, err := sign.LoadPolicy(bad); !errors.Is(err, sign.ErrKeyFormat) {
		t.Errorf("bad key file: err = %v, want ErrKeyFormat", err)
	}
	writable := policyDir(t, pub)
	if err := os.Chmod(filepath.Join(writable, "a.pub"), 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := sign.LoadPolicy(writable); !errors.Is(err, sign.ErrUnsafeFile) {
		t.Errorf("world-writable key file: err = %v, want ErrUnsafeFile", err)
	}
	open := policyDir(t, pub)
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := sign.LoadPolicy(open); !errors.Is(err, sign.ErrUnsafeFile) {
		t.Errorf("world-writable folder: err = %v, want ErrUnsafeFile", err)
	}
	// Files not named *.pub are ignored.
	other := policyDir(t, pub)
	os.WriteFile(filepath.Join(other, "README"), []byte("garbage"), 0o644)
	if p, err := sign.LoadPolicy(other); err != nil || p.Len() != 1 {
		t.Errorf("README beside a key: %v", err)
	}
}
