package sign_test

import (
	"bytes"
	"testing"

	"ulp/livepatch/sign"
)

// FuzzParseSignature: no panic; an accepted payload re-encodes to itself.
func FuzzParseSignature(f *testing.F) {
	signed := readFile(f, "signed.so")
	off := bytes.Index(signed, []byte("ULPS"))
	f.Add(signed[off : off+sign.PayloadSize])
	f.Add([]byte("ULPS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := sign.ParseSignature(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzCheck feeds whole files to the signature check: no panic, and a
// file accepted must carry the payload that Check returned.
func FuzzCheck(f *testing.F) {
	f.Add(readFile(f, "signed.so"))
	f.Add(readFile(f, "unsigned.so"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := sign.Check(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if !bytes.Contains(b, s.Marshal()) {
			t.Fatalf("accepted signature not in the file")
		}
	})
}

// FuzzParseKeys: key files are outside bytes too (ulp verify --pub); no
// panic, and an accepted key re-encodes to a file that parses to it.
func FuzzParseKeys(f *testing.F) {
	f.Add(readFile(f, "test.pub"))
	f.Add(readFile(f, "test.key"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := sign.ParsePublicKey(b); err == nil {
			enc, err := sign.MarshalPublicKey(k)
			if err != nil {
				t.Fatal(err)
			}
			if k2, err := sign.ParsePublicKey(enc); err != nil || !k2.Equal(k) {
				t.Fatalf("re-encoded public key: %v", err)
			}
		}
		if k, err := sign.ParsePrivateKey(b); err == nil && len(k) != 64 {
			t.Fatalf("private key of %d bytes", len(k))
		}
	})
}
