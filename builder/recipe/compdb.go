package recipe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// MaxCompileCommands bounds a compile_commands.json.
const MaxCompileCommands = 64 << 20

// ErrNoCommand means the recipe does not know how file is compiled.
var ErrNoCommand = errors.New("no compile command for the file")

type compdbEntry struct {
	Directory string   `json:"directory"`
	File      string   `json:"file"`
	Arguments []string `json:"arguments"`
	Command   string   `json:"command"`
	Output    string   `json:"output"`
}

// compdb is the recipe of a compile_commands.json.
type compdb struct {
	root string
	cmds map[string]Command // by path relative to root
}

// FromCompileCommands reads the compile_commands.json at path (as CMake,
// Meson or Bear write it) for the tree in the folder that holds it.
func FromCompileCommands(path string) (Recipe, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return LoadCompileCommands(path, filepath.Dir(abs))
}

// LoadCompileCommands reads the compile_commands.json at path for the
// source tree at root.
func LoadCompileCommands(path, root string) (Recipe, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxCompileCommands+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxCompileCommands {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxCompileCommands)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	r, err := parseCompileCommands(data, root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func parseCompileCommands(data []byte, root string) (*compdb, error) {
	var entries []compdbEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, err
	}
	r := &compdb{root: root, cmds: make(map[string]Command)}
	for i, e := range entries {
		if e.Directory == "" || e.File == "" {
			return nil, fmt.Errorf("entry %d: no directory or file", i)
		}
		args := e.Arguments
		if len(args) == 0 {
			var err error
			if args, err = splitShell(e.Command); err != nil {
				return nil, fmt.Errorf("entry %d: %w", i, err)
			}
		}
		if len(args) == 0 {
			return nil, fmt.Errorf("entry %d: empty command", i)
		}
		dir := e.Directory
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(root, dir)
		}
		file := e.File
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		rel, err := filepath.Rel(root, filepath.Clean(file))
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue // a file outside the tree: not one a patch of it names
		}
		r.cmds[filepath.ToSlash(rel)] = Command{Dir: dir, Args: StripOutput(args)}
	}
	return r, nil
}

func (r *compdb) Name() string { return "compile-commands" }
func (r *compdb) Root() string { return r.root }

func (r *compdb) Command(_ context.Context, file string) (Command, error) {
	c, ok := r.cmds[filepath.ToSlash(filepath.Clean(file))]
	if !ok {
		return Command{}, fmt.Errorf("%w: %s", ErrNoCommand, file)
	}
	c.Args = append([]string(nil), c.Args...)
	return c, nil
}

// StripOutput returns args without -o FILE and the dependency-output flags
// (-MD, -MMD, -MF F, -MT T, -MQ T, -MP, -M, -MM).
func StripOutput(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "-MF" || a == "-MT" || a == "-MQ":
			i++
		case strings.HasPrefix(a, "-o") && i > 0,
			strings.HasPrefix(a, "-MF"), strings.HasPrefix(a, "-MT"), strings.HasPrefix(a, "-MQ"),
			a == "-MD" || a == "-MMD" || a == "-MP" || a == "-M" || a == "-MM":
		default:
			out = append(out, a)
		}
	}
	return out
}
