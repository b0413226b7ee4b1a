package agentbin

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sync"
)

// ErrNoAgent means this binary was built without the agent embedded.
var ErrNoAgent = errors.New("agentbin: no agent embedded: build with make (it copies build/ulp-agent to agentbin/bin/ulp)")

//go:embed all:bin
var bin embed.FS

// agentPath is the embedded agent's path within bin.
const agentPath = "bin/ulp"

// Info describes the embedded agent.
type Info struct {
	SHA256  string // hex
	Version string // "sha256:" + SHA256[:16], the name of its copy on hosts (bin/ulp-SHA256[:16])
	Size    int64
	// GoVersion is the Go toolchain that built the agent (from its build
	// info), e.g. "go1.26.8".
	GoVersion string
}

var load = sync.OnceValues(func() ([]byte, error) {
	b, err := bin.ReadFile(agentPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoAgent
	}
	if err != nil {
		return nil, fmt.Errorf("agentbin: read embedded agent: %w", err)
	}
	if len(b) == 0 {
		return nil, ErrNoAgent
	}
	return b, nil
})

// Agent returns the embedded agent's bytes (shared: do not modify them), or
// [ErrNoAgent].
func Agent() ([]byte, error) { return load() }

// Describe returns the embedded agent's [Info], or an error wrapping
// [ErrNoAgent] or describing why the embedded file is not a Go binary.
func Describe() (Info, error) {
	b, err := load()
	if err != nil {
		return Info{}, err
	}
	return describe(b)
}

func describe(b []byte) (Info, error) {
	bi, err := buildinfo.Read(bytes.NewReader(b))
	if err != nil {
		return Info{}, fmt.Errorf("agentbin: embedded agent is not a Go binary: %w", err)
	}
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	return Info{SHA256: h, Version: "sha256:" + h[:16], Size: int64(len(b)), GoVersion: bi.GoVersion}, nil
}
