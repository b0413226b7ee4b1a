package container

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"ulp/internal/regfile"
	"ulp/livepatch/elfsym"
)

// MaxComments bounds the .ulp.comments section.
const MaxComments = 1 << 20

// File is a livepatch container read from disk.
type File struct {
	Apply   *Spec  // from .ulp
	Revert  *Spec  // from .ulp.rev
	BuildID []byte // the container's own GNU build-id
}

// MaxFile bounds the size of a container file: the agent reads, hashes and
// signs whole containers, and a livepatch is far smaller.
const MaxFile = 256 << 20

// OpenFile opens the container file at path for reading without
// touching anything but a regular file (regfile.Open: a FIFO or a device
// at the path is refused with ErrNotRegular before it is opened), and
// refuses one larger than MaxFile. Every reader of a container file opens it
// through OpenFile.
func OpenFile(path string) (*os.File, fs.FileInfo, error) {
	f, fi, err := regfile.Open(path)
	if err != nil {
		return nil, nil, err
	}
	if fi.Size() > MaxFile {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w: %d bytes, the bound is %d", path, ErrTooLarge, fi.Size(), MaxFile)
	}
	return f, fi, nil
}

// Open reads the container at path (opened by OpenFile). It reads
// everything it needs and closes the file before returning, so a File holds
// no resources.
func Open(path string) (*File, error) {
	f, _, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Read reads a container from r, which it does not own. Both Specs carry the
// comments and labels of .ulp.comments. Read checks that .ulp and .ulp.rev
// agree on the patch id and the target.
func Read(r io.ReaderAt) (*File, error) {
	if err := elfsym.Check(r); errors.Is(err, elfsym.ErrNotELF) {
		return nil, &FormatError{Msg: "not an ELF file", Err: err}
	} else if err != nil {
		return nil, &FormatError{Msg: "ELF file out of bounds", Err: err}
	}
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, &FormatError{Msg: "not an ELF file", Err: err}
	}
	c := &File{}
	var syms *elfsym.Object // the container's symbols, read for a libpulp-format section
	resolve := func(name string, function bool) (uint64, error) {
		if syms == nil {
			obj, err := elfsym.Read(r, "")
			if err != nil {
				return 0, err
			}
			syms = obj
		}
		types := []elfsym.Type{elfsym.TypeObject, elfsym.TypeTLS, elfsym.TypeCommon, elfsym.TypeNone}
		if function {
			types = []elfsym.Type{elfsym.TypeFunc}
		}
		s, err := syms.Lookup(name, types...)
		return s.Offset, err
	}
	if c.Apply, err = readSpec(ef, SectionApply, Apply, resolve); err != nil {
		return nil, err
	}
	if c.Revert, err = readSpec(ef, SectionRevert, Revert, resolve); err != nil {
		return nil, err
	}
	if c.BuildID, err = elfsym.BuildID(ef); err != nil {
		return nil, fmt.Errorf("container build-id: %w", err)
	}
	if c.Apply.ID != c.Revert.ID {
		return nil, &FormatError{Section: SectionRevert, Msg: "patch id differs from " + SectionApply, Val: c.Revert.ID}
	}
	if c.Apply.Target.Name != c.Revert.Target.Name || !bytes.Equal(c.Apply.Target.BuildID, c.Revert.Target.BuildID) {
		return nil, &FormatError{Section: SectionRevert, Msg: "target differs from " + SectionApply, Val: fmt.Sprintf("%q", c.Revert.Target.Name)}
	}
	comments, err := sectionData(ef, SectionComments, MaxComments)
	if err != nil && !errors.Is(err, ErrNotContainer) {
		return nil, err
	}
	for _, s := range []*Spec{c.Apply, c.Revert} {
		s.Comments = string(bytes.TrimRight(comments, "\x00")) // libpulp's ends with a NUL
		s.Labels = Labels(s.Comments)
	}
	return c, nil
}

func readSpec(ef *elf.File, name string, want Kind, resolve func(string, bool) (uint64, error)) (*Spec, error) {
	data, err := sectionData(ef, name, MaxSection)
	if err != nil {
		return nil, err
	}
	var spec *Spec
	if isLibpulp(data) {
		spec, err = unmarshalLibpulp(data, resolve)
	} else {
		spec, err = Unmarshal(data)
	}
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.Section = name
		}
		return nil, err
	}
	if spec.Kind != want {
		return nil, &FormatError{Section: name, Off: 6, Msg: "wrong kind", Val: spec.Kind}
	}
	return spec, nil
}

// sectionData returns the bytes of the named section; a missing section is
// ErrNotContainer.
func sectionData(ef *elf.File, name string, max uint64) ([]byte, error) {
	s := ef.Section(name)
	if s == nil {
		return nil, fmt.Errorf("%w: no %s section", ErrNotContainer, name)
	}
	if s.Type == elf.SHT_NOBITS {
		return nil, &FormatError{Section: name, Off: int64(s.Offset), Msg: "section has no file contents"}
	}
	if s.Size > max {
		return nil, &FormatError{Section: name, Off: int64(s.Offset), Msg: "section too large", Val: s.Size}
	}
	data, err := s.Data()
	if err != nil {
		return nil, &FormatError{Section: name, Off: int64(s.Offset), Msg: "unreadable section", Err: err}
	}
	return data, nil
}
