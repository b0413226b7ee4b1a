package agentbin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ulp/internal/testenv"
)

// TestAgent_MatchesBuild checks, when make has run, that the embedded agent
// is build/ulp-agent and that Describe reports its digest.
func TestAgent_MatchesBuild(t *testing.T) {
	want, err := os.ReadFile(testenv.Artifact(t, "ulp-agent"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Agent()
	if errors.Is(err, ErrNoAgent) {
		t.Fatalf("%v (make builds build/ulp-agent and copies it before the tests)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("embedded agent (%d bytes) is not build/ulp-agent (%d bytes): rebuild with make", len(got), len(want))
	}
	info, err := Describe()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(want)
	if info.SHA256 != hex.EncodeToString(sum[:]) || info.Version != "sha256:"+info.SHA256[:16] || info.Size != int64(len(want)) {
		t.Errorf("Describe() = %+v", info)
	}
	if !strings.HasPrefix(info.GoVersion, "go1.") {
		t.Errorf("GoVersion = %q", info.GoVersion)
	}
}

// TestDescribe covers the embedded-file checks without depending on make:
// a real Go binary built here, and bytes that are not one.
func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "prog")
	cmd := exec.Command("go", "build", "-o", exe, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	info, err := describe(b)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(len(b)) {
		t.Errorf("describe = %+v", info)
	}
	for _, bad := range [][]byte{nil, []byte("#!/bin/sh\necho not an agent\n"), b[:64]} {
		if _, err := describe(bad); err == nil {
			t.Errorf("describe(%d bytes of junk) succeeded", len(bad))
		}
	}
}
