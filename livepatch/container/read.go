package container

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

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

// Open reads the container at path. It reads everything it needs and closes
// the file before returning, so a File holds no resources.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
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
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, &FormatError{Msg: "not an ELF file", Err: err}
	}
	c := &File{}
	if c.Apply, err = readSpec(ef, SectionApply, Apply); err != nil {
		return nil, err
	}
	if c.Revert, err = readSpec(ef, SectionRevert, Revert); err != nil {
		return nil, err
	}
	if c.BuildID, err = elfsym.BuildID(ef); err != nil {
		return nil, fmt.Errorf("container build-id: %w", err)
	}
	if c.Apply.ID != c.Revert.ID {
		return nil, &FormatError{Section: SectionRevert, Msg: "patch id differs from " + SectionApply, Val: c.Revert.ID}
	}
	if c.Apply.Target.Name != c.Revert.Target.Name || !bytes.Equal(c.Apply.Target.BuildID, c.Revert.Target.BuildID) {
		return nil, &FormatError{Section: SectionRevert, Msg: "target differs from " + SectionApply, Val: c.Revert.Target.Name}
	}
	comments, err := sectionData(ef, SectionComments, MaxComments)
	if err != nil && !errors.Is(err, ErrNotContainer) {
		return nil, err
	}
	for _, s := range []*Spec{c.Apply, c.Revert} {
		s.Comments = string(comments)
		s.Labels = Labels(s.Comments)
	}
	return c, nil
}

func readSpec(ef *elf.File, name string, want Kind) (*Spec, error) {
	data, err := sectionData(ef, name, MaxSection)
	if err != nil {
		return nil, err
	}
	spec, err := Unmarshal(data)
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
