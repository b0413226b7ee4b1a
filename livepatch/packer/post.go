package packer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"ulp/internal/atomicfile"
	"ulp/livepatch/elfsym"
)

// Errors of Post callers branch on.
var (
	// ErrNoPads means a file has no function with the entry pad.
	ErrNoPads = errors.New("no function carries the patchable entry pad (-fpatchable-function-entry=16,14)")
	// ErrInvalidInput tags the errors of Post that come from its input
	// file (missing, unreadable, not ELF) rather than from writing it.
	ErrInvalidInput = errors.New("invalid input")
)

// PostResult counts what Post did.
type PostResult struct {
	Merged  int // entries rewritten from 90 90 to 66 90
	Already int // entries that were 66 90 already
}

// Post rewrites, in the ELF file at path, the two NOP bytes 90 90 after every
// padded function entry (after endbr64, if any) into the single 2-byte NOP
// 66 90, so that no thread can stop between them. The file is replaced
// atomically, and only when something changed. A file without any padded
// entry is ErrNoPads.
func Post(path string) (PostResult, error) {
	var res PostResult
	fi, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > MaxLivepatchSize {
		return res, fmt.Errorf("%w: %s: not a regular file of at most %d bytes", ErrInvalidInput, path, MaxLivepatchSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	sites, err := elfsym.PadSites(bytes.NewReader(data))
	if err != nil {
		return res, fmt.Errorf("%w: %s: %w", ErrInvalidInput, path, err)
	}
	if len(sites) == 0 {
		return res, fmt.Errorf("%s: %w", path, ErrNoPads)
	}
	for _, s := range sites {
		if s.Merged {
			res.Already++
			continue
		}
		data[s.FileOffset+int64(s.EntryOffset)] = 0x66
		res.Merged++
	}
	if res.Merged == 0 {
		return res, nil
	}
	if err := atomicfile.Write(path, fi.Mode().Perm(), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		return res, fmt.Errorf("write %s: %w", path, err)
	}
	return res, nil
}
