package elfsym

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"ulp/livepatch/insn"
)

// Schema is the "schema" field of the `ulp extract` JSON dump.
const Schema = "ulp.extract/v1"

// Limits applied to a JSON dump, which may come from anywhere.
const (
	// MaxDumpSize bounds the bytes read from a JSON dump.
	MaxDumpSize = 256 << 20
	maxName     = 255
	maxSymName  = 4096
)

type jsonDump struct {
	Schema  string       `json:"schema"`
	Name    string       `json:"name"`
	BuildID string       `json:"build_id"`
	Symbols []jsonSymbol `json:"symbols"`
	// Segments, when present, let the packer check explicit offsets.
	Segments []Segment `json:"segments,omitempty"`
}

type jsonSymbol struct {
	Name        string `json:"name"`
	Offset      uint64 `json:"offset"`
	Size        uint64 `json:"size"`
	Type        Type   `json:"type"`
	Bind        Bind   `json:"bind"`
	Pad         bool   `json:"pad,omitempty"`
	Entry       bool   `json:"entry,omitempty"`
	EntryOffset uint8  `json:"entry_offset,omitempty"`
	Refused     string `json:"refused,omitempty"`
}

// WriteJSON writes o as an `ulp extract` dump (schema [Schema]).
func (o *Object) WriteJSON(w io.Writer) error {
	d := jsonDump{
		Schema:   Schema,
		Name:     o.Name,
		BuildID:  hex.EncodeToString(o.BuildID),
		Symbols:  make([]jsonSymbol, len(o.Symbols)),
		Segments: o.Segments,
	}
	for i, s := range o.Symbols {
		d.Symbols[i] = jsonSymbol(s)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(d)
}

// ReadJSON reads an `ulp extract` dump, at most [MaxDumpSize] bytes, and
// validates every field; a malformed dump yields an error wrapping
// [ErrInvalidDump] and a nil Object.
func ReadJSON(r io.Reader) (*Object, error) { return readJSON(r, MaxDumpSize) }

func readJSON(r io.Reader, limit int64) (*Object, error) {
	b, err := io.ReadAll(&io.LimitedReader{R: r, N: limit + 1})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDump, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalidDump, limit)
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) == nil && top["library"] != nil && top["schema"] == nil {
		return readLibpulpJSON(b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d jsonDump
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDump, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidDump)
	}
	obj, err := d.object()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDump, err)
	}
	return obj, nil
}

func (d *jsonDump) object() (*Object, error) {
	if d.Schema != Schema {
		return nil, fmt.Errorf("schema %q, want %q", d.Schema, Schema)
	}
	switch {
	case d.Name == "" || len(d.Name) > maxName:
		return nil, fmt.Errorf("name of %d bytes, want 1 to %d", len(d.Name), maxName)
	case strings.ContainsAny(d.Name, "/\x00") || d.Name == "." || d.Name == "..":
		return nil, fmt.Errorf("name %q is not a file basename", d.Name)
	}
	if len(d.BuildID) > 2*MaxBuildID {
		return nil, fmt.Errorf("build_id of %d hex digits, at most %d", len(d.BuildID), 2*MaxBuildID)
	}
	bid, err := hex.DecodeString(d.BuildID)
	if err != nil {
		return nil, fmt.Errorf("build_id: %w", err)
	}
	if len(bid) == 0 {
		bid = nil
	}
	obj := &Object{Name: d.Name, BuildID: bid, Symbols: make([]Symbol, len(d.Symbols))}
	for i, s := range d.Symbols {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("symbol %d: %w", i, err)
		}
		obj.Symbols[i] = Symbol(s)
	}
	obj.Symbols = dedup(obj.Symbols)
	if len(d.Segments) > MaxProgs {
		return nil, fmt.Errorf("%d segments, at most %d", len(d.Segments), MaxProgs)
	}
	for i, sg := range d.Segments {
		if sg.Vaddr+sg.Memsz < sg.Vaddr {
			return nil, fmt.Errorf("segment %d wraps around", i)
		}
	}
	obj.Segments = d.Segments
	return obj, nil
}

func (s *jsonSymbol) validate() error {
	if s.Name == "" || len(s.Name) > maxSymName || strings.ContainsRune(s.Name, 0) {
		return fmt.Errorf("name of %d bytes (1 to %d, no NUL)", len(s.Name), maxSymName)
	}
	switch s.Type {
	case TypeFunc, TypeIFunc, TypeObject, TypeTLS, TypeCommon, TypeNone:
	default:
		return fmt.Errorf("%q: unknown type %q", s.Name, s.Type)
	}
	switch s.Bind {
	case BindLocal, BindGlobal, BindWeak, BindUnique:
	default:
		return fmt.Errorf("%q: unknown bind %q", s.Name, s.Bind)
	}
	if s.Pad && s.Type != TypeFunc {
		return fmt.Errorf("%q: pad on a %s symbol", s.Name, s.Type)
	}
	if s.Entry && (s.Pad || s.Type != TypeFunc) {
		return fmt.Errorf("%q: entry on a %s symbol with pad %v", s.Name, s.Type, s.Pad)
	}
	if s.EntryOffset != 0 && (!s.Pad && !s.Entry || s.EntryOffset != insn.EndbrLen) {
		return fmt.Errorf("%q: entry_offset %d, want 0, or 4 with pad or entry", s.Name, s.EntryOffset)
	}
	if len(s.Refused) > maxSymName || s.Refused != "" && (s.Pad || s.Entry) {
		return fmt.Errorf("%q: refused with pad or entry, or too long", s.Name)
	}
	return nil
}

// libpulpDump is the JSON of SUSE libpulp's `ulp extract`: one "library"
// with its name, build-id and symbols, st_info and st_other as in the ELF
// symbol table (research notes: libpulp.md §3.5).
type libpulpDump struct {
	Library struct {
		Name    string `json:"name"`
		BuildID string `json:"buildid"`
		Symbols []struct {
			Name    string `json:"name"`
			Offset  int64  `json:"offset"`
			Size    int64  `json:"size"`
			StInfo  uint8  `json:"st_info"`
			StOther uint8  `json:"st_other"`
		} `json:"symbols"`
	} `json:"library"`
}

// readLibpulpJSON reads libpulp's dump, validated as ulp's is. It lists
// undefined symbols too (offset 0), which are dropped, and does not say
// which functions have the pad: libpulp patches only padded functions, so
// every function is taken for padded, its NOPs at the entry.
func readLibpulpJSON(b []byte) (*Object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d libpulpDump
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: libpulp dump: %w", ErrInvalidDump, err)
	}
	u := jsonDump{Schema: Schema, Name: d.Library.Name, BuildID: d.Library.BuildID}
	for i, s := range d.Library.Symbols {
		if s.Offset < 0 || s.Size < 0 {
			return nil, fmt.Errorf("%w: libpulp dump: symbol %d: negative offset or size", ErrInvalidDump, i)
		}
		typ, ok := symType(elf.ST_TYPE(s.StInfo))
		if !ok || s.Offset == 0 {
			continue // a section, file or undefined symbol
		}
		u.Symbols = append(u.Symbols, jsonSymbol{Name: s.Name, Offset: uint64(s.Offset), Size: uint64(s.Size),
			Type: typ, Bind: symBind(elf.ST_BIND(s.StInfo)), Pad: typ == TypeFunc})
	}
	obj, err := u.object()
	if err != nil {
		return nil, fmt.Errorf("%w: libpulp dump: %w", ErrInvalidDump, err)
	}
	return obj, nil
}
