package packer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ulp/internal/testenv"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/packer/packertest"
)

func TestPost(t *testing.T) {
	for _, cf := range []bool{false, true} {
		t.Run(fmt.Sprintf("cf-protection=%v", cf), func(t *testing.T) {
			fx := packertest.Build(t, packertest.Options{CFProtection: cf})
			probe := packertest.Probe(t, fx.Dir)
			before, err := os.ReadFile(fx.Target)
			if err != nil {
				t.Fatal(err)
			}
			sites, err := elfsym.PadSites(bytes.NewReader(before))
			if err != nil {
				t.Fatal(err)
			}
			if len(sites) < 5 {
				t.Fatalf("only %d padded entries: %+v", len(sites), sites)
			}
			for _, s := range sites {
				if s.Merged || s.EntryOffset != map[bool]uint8{false: 0, true: 4}[cf] {
					t.Fatalf("before post: %+v", s)
				}
			}
			res, err := Post(fx.Target)
			if err != nil {
				t.Fatal(err)
			}
			if res.Merged != len(sites) || res.Already != 0 {
				t.Errorf("Post = %+v, want %d merged", res, len(sites))
			}
			after, err := os.ReadFile(fx.Target)
			if err != nil {
				t.Fatal(err)
			}
			// Exactly one byte per entry changed, from 0x90 to 0x66.
			var changed []int64
			for i := range before {
				if before[i] != after[i] {
					if before[i] != 0x90 || after[i] != 0x66 || after[i+1] != 0x90 {
						t.Fatalf("byte %#x: %#x -> %#x", i, before[i], after[i])
					}
					changed = append(changed, int64(i))
				}
			}
			var want []int64
			for _, s := range sites {
				want = append(want, s.FileOffset+int64(s.EntryOffset))
			}
			slices.Sort(want)
			if !slices.Equal(changed, want) || len(before) != len(after) {
				t.Errorf("changed bytes at %v, want %v", changed, want)
			}
			again, err := elfsym.PadSites(bytes.NewReader(after))
			if err != nil || len(again) != len(sites) {
				t.Fatalf("after post: %d sites, %v", len(again), err)
			}
			for _, s := range again {
				if !s.Merged {
					t.Errorf("not merged: %+v", s)
				}
			}
			// The library still works, and a second post changes nothing.
			if out, err := packertest.Call(t, probe, fx.Target, "foo", "2"); err != nil || out != "8" {
				t.Errorf("foo(2) after post = %q, %v; want 8", out, err)
			}
			res, err = Post(fx.Target)
			if err != nil || res.Merged != 0 || res.Already != len(sites) {
				t.Errorf("second Post = %+v, %v", res, err)
			}
			third, _ := os.ReadFile(fx.Target)
			if !bytes.Equal(third, after) {
				t.Error("second Post changed the file")
			}
			if got := packertest.ListDir(t, fx.Dir); slices.ContainsFunc(got, func(n string) bool { return n[0] == '.' }) {
				t.Errorf("temporary file left: %v", got)
			}
		})
	}
}

func TestPost_ReadOnlyFolder(t *testing.T) {
	fx := packertest.Build(t, packertest.Options{})
	before, err := os.ReadFile(fx.Target)
	if err != nil {
		t.Fatal(err)
	}
	files := packertest.ListDir(t, fx.Dir)
	packertest.MakeReadOnly(t, fx.Dir)
	_, err = Post(fx.Target)
	if err == nil || errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "create temporary file") {
		t.Fatalf("Post in a read-only folder = %v", err)
	}
	after, _ := os.ReadFile(fx.Target)
	if !bytes.Equal(before, after) || !slices.Equal(files, packertest.ListDir(t, fx.Dir)) {
		t.Error("Post changed the folder")
	}
}

func TestPost_Errors(t *testing.T) {
	testenv.Require(t, testenv.CC)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.so")
	testenv.CompileC(t, plain, []string{"-shared", "-fPIC", "-O2"}, packertest.Source(t, dir, "livepatch.c"))
	text := filepath.Join(dir, "text")
	if err := os.WriteFile(text, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		is         error
	}{
		{"no pads", plain, ErrNoPads},
		{"missing", filepath.Join(dir, "nope"), os.ErrNotExist},
		{"folder", dir, ErrInvalidInput},
		{"not elf", text, ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := packertest.ListDir(t, dir)
			_, err := Post(tt.path)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("Post = %v, want error %v", err, tt.is)
			}
			if got := packertest.ListDir(t, dir); !slices.Equal(got, before) {
				t.Errorf("folder changed: %v -> %v", before, got)
			}
		})
	}
}
