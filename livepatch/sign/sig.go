package sign

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha512"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"ulp/livepatch/elfedit"
	"ulp/livepatch/elfsym"
)

// Section is the name of the ELF section holding the signature.
const Section = ".ulp.sig"

// PayloadSize is the size of the .ulp.sig payload.
const PayloadSize = 8 + ed25519.PublicKeySize + ed25519.SignatureSize

// MaxFile bounds the size of a container that is signed or verified.
const MaxFile = 1 << 30

// Payload layout constants.
const (
	magic      = "ULPS"
	version    = 1
	algEd25519 = 1
	context    = "ulp container signature v1"
)

// Errors callers branch on.
var (
	// ErrUnsigned means the container has no .ulp.sig section.
	ErrUnsigned = errors.New("container is not signed")
	// ErrBadSignature means the signature does not match the container's
	// bytes: the file was changed after signing, or the signature is forged.
	ErrBadSignature = errors.New("signature does not match the container")
	// ErrUntrusted means the signature is valid but made with a key the
	// trust policy does not list.
	ErrUntrusted = errors.New("container signed by an untrusted key")
)

// FormatError reports a malformed .ulp.sig section or ELF file. Off is the
// offset inside the payload (or the file, for ELF-level problems).
type FormatError struct {
	Off int64
	Msg string
	Err error // the underlying error, if any
}

func (e *FormatError) Error() string {
	s := fmt.Sprintf("%s: %s at offset %d", Section, e.Msg, e.Off)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

// Signature is the decoded .ulp.sig payload.
type Signature struct {
	Key ed25519.PublicKey // the signer's public key
	Sig []byte            // ed25519ph signature, 64 bytes
}

// ParseSignature decodes a .ulp.sig payload:
//
//	0  4   magic "ULPS"
//	4  2   version 1 (little-endian)
//	6  1   algorithm 1 = Ed25519ph
//	7  1   flags 0
//	8  32  public key
//	40 64  signature
func ParseSignature(b []byte) (*Signature, error) {
	switch {
	case len(b) != PayloadSize:
		return nil, &FormatError{Msg: fmt.Sprintf("payload is %d bytes, want %d", len(b), PayloadSize)}
	case string(b[:4]) != magic:
		return nil, &FormatError{Msg: "bad magic"}
	case binary.LittleEndian.Uint16(b[4:]) != version:
		return nil, &FormatError{Off: 4, Msg: fmt.Sprintf("unsupported version %d", binary.LittleEndian.Uint16(b[4:]))}
	case b[6] != algEd25519:
		return nil, &FormatError{Off: 6, Msg: fmt.Sprintf("unknown algorithm %d", b[6])}
	case b[7] != 0:
		return nil, &FormatError{Off: 7, Msg: "reserved flags are not zero"}
	}
	return &Signature{
		Key: bytes.Clone(b[8 : 8+ed25519.PublicKeySize]),
		Sig: bytes.Clone(b[8+ed25519.PublicKeySize:]),
	}, nil
}

// Marshal encodes s as a .ulp.sig payload.
func (s *Signature) Marshal() []byte {
	b := make([]byte, 8, PayloadSize)
	copy(b, magic)
	binary.LittleEndian.PutUint16(b[4:], version)
	b[6] = algEd25519
	b = append(b, s.Key...)
	return append(b, s.Sig...)
}

// Sign returns a copy of the ELF file in with a .ulp.sig section holding
// key's signature. An existing signature is replaced. Only the new section
// and the section header table change; the loaded image does not.
func Sign(in []byte, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("sign: not an ed25519 private key")
	}
	if len(in) > MaxFile {
		return nil, fmt.Errorf("sign: file of %d bytes exceeds %d", len(in), MaxFile)
	}
	out, err := elfedit.AddSections(in, []elfedit.Section{{Name: Section, Data: make([]byte, PayloadSize)}})
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	off, err := locate(bytes.NewReader(out), int64(len(out)))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	digest, err := digest(bytes.NewReader(out), int64(len(out)), off)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(nil, digest, opts())
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	s := Signature{Key: key.Public().(ed25519.PublicKey), Sig: sig}
	copy(out[off:], s.Marshal())
	return out, nil
}

// Check reads the signature of the container r (size bytes) and verifies
// it against the key the signature names. It returns the signature, whose
// Key the caller must still look up among the keys it trusts (Policy does
// that). Errors: ErrUnsigned, ErrBadSignature, or a *FormatError.
func Check(r io.ReaderAt, size int64) (*Signature, error) {
	if size > MaxFile {
		return nil, &FormatError{Msg: fmt.Sprintf("file of %d bytes exceeds %d", size, MaxFile)}
	}
	off, err := locate(r, size)
	if err != nil {
		return nil, err
	}
	payload := make([]byte, PayloadSize)
	if _, err := r.ReadAt(payload, off); err != nil {
		return nil, &FormatError{Off: off, Msg: "unreadable payload", Err: err}
	}
	s, err := ParseSignature(payload)
	if err != nil {
		return nil, err
	}
	d, err := digest(r, size, off)
	if err != nil {
		return nil, err
	}
	if err := ed25519.VerifyWithOptions(s.Key, d, s.Sig, opts()); err != nil {
		return s, fmt.Errorf("%w (key %s)", ErrBadSignature, Fingerprint(s.Key))
	}
	return s, nil
}

func opts() *ed25519.Options {
	return &ed25519.Options{Hash: crypto.SHA512, Context: context}
}

// locate returns the file offset of the .ulp.sig payload. Exactly one such
// section must exist, of type SHT_PROGBITS, not allocated, PayloadSize
// bytes, inside the file.
func locate(r io.ReaderAt, size int64) (int64, error) {
	sr := io.NewSectionReader(r, 0, size)
	if err := elfsym.Check(sr); errors.Is(err, elfsym.ErrNotELF) {
		return 0, &FormatError{Msg: "not an ELF file", Err: err}
	} else if err != nil {
		return 0, &FormatError{Msg: "ELF file out of bounds", Err: err}
	}
	ef, err := elf.NewFile(sr)
	if err != nil {
		return 0, &FormatError{Msg: "not an ELF file", Err: err}
	}
	var found *elf.Section
	for _, s := range ef.Sections {
		if s.Name != Section {
			continue
		}
		if found != nil {
			return 0, &FormatError{Off: int64(s.Offset), Msg: "more than one " + Section + " section"}
		}
		found = s
	}
	switch {
	case found == nil:
		return 0, ErrUnsigned
	case found.Type != elf.SHT_PROGBITS || found.Flags&elf.SHF_ALLOC != 0:
		return 0, &FormatError{Off: int64(found.Offset), Msg: "not a non-allocated SHT_PROGBITS section"}
	case found.Size != PayloadSize:
		return 0, &FormatError{Off: int64(found.Offset), Msg: fmt.Sprintf("section is %d bytes, want %d", found.Size, PayloadSize)}
	case found.Offset > uint64(size) || found.Size > uint64(size)-found.Offset:
		return 0, &FormatError{Off: int64(found.Offset), Msg: "section beyond the end of the file"}
	}
	return int64(found.Offset), nil
}

// digest is SHA-512 over the file with the payload at off zeroed.
func digest(r io.ReaderAt, size, off int64) ([]byte, error) {
	h := sha512.New()
	rest := off + PayloadSize
	for _, part := range [][2]int64{{0, off}, {rest, size - rest}} {
		n, err := io.Copy(h, io.NewSectionReader(r, part[0], part[1]))
		if err == nil && n != part[1] {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, fmt.Errorf("read container: %w", err)
		}
		if part[0] == 0 {
			h.Write(make([]byte, PayloadSize))
		}
	}
	return h.Sum(nil), nil
}
