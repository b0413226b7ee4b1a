package recipe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// This file holds what the recipes that configure a tree share: running the
// package's own tools with a clean environment, a configure step done once
// under a lock and remembered by a stamp, and reading the compiler command
// lines that make prints.

// maxToolOutput bounds what a configure tool may print into an error.
const maxToolOutput = 4 << 10

// toolEnv is the environment the package's tools run with: this process's
// PATH, HOME and locale, none of the caller's compiler flags or make
// settings (a parent `make -j` exports MAKEFLAGS, which would tie the
// package's make to a jobserver it cannot reach), plus extra.
func toolEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TERM":
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runTool runs argv in dir with env, returning its standard output. A
// failure carries the tail of what it printed.
func runTool(ctx context.Context, dir string, env []string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		tail := errOut.Bytes()
		if len(tail) == 0 {
			tail = out.Bytes()
		}
		if len(tail) > maxToolOutput {
			tail = tail[len(tail)-maxToolOutput:]
		}
		return nil, fmt.Errorf("run %s in %s: %w\n%s", strings.Join(argv, " "), dir, err, bytes.TrimSpace(tail))
	}
	return out.Bytes(), nil
}

// configureOnce runs configure unless stamp (a file) already holds key,
// then writes key into stamp. A lock file beside the stamp serialises
// processes configuring the same tree (tests of several packages run at
// once).
func configureOnce(ctx context.Context, lockDir, stamp, key string, configure func(context.Context) error) error {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(lockDir, ".ulp-recipe.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	defer lock.Close()
	if err := flock(ctx, lock); err != nil {
		return fmt.Errorf("configure: lock %s: %w", lock.Name(), err)
	}
	if b, err := os.ReadFile(stamp); err == nil && string(b) == key {
		return nil
	}
	os.Remove(stamp)
	if err := configure(ctx); err != nil {
		return err
	}
	if err := os.WriteFile(stamp, []byte(key), 0o644); err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	return nil
}

// flock takes an exclusive lock on f (released when f is closed), polling
// so that ctx bounds the wait.
func flock(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stampKey is the digest of every input of a configure step.
func stampKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)) + "\n"
}

// compileLine finds, in the output of `make -n`, the compiler command that
// writes obj, and returns it as argv without the output and
// dependency-output flags. Continuation lines are joined first.
func compileLine(makeOut []byte, obj string) ([]string, error) {
	text := strings.ReplaceAll(string(makeOut), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		if !strings.Contains(line, " -o "+obj+" ") && !strings.HasSuffix(line, " -o "+obj) {
			continue
		}
		argv, err := splitShell(line)
		if err != nil {
			return nil, fmt.Errorf("compile command of %s: %w", obj, err)
		}
		return StripOutput(argv), nil
	}
	return nil, fmt.Errorf("make prints no command writing %s", obj)
}

// splitShell splits a POSIX shell command line (as make prints it, or as
// compile_commands.json's "command" holds it) into
// words, honouring single quotes, double quotes and backslashes. A line that
// needs more of the shell than quoting (expansions, redirections, several
// commands) is refused: it is not a plain compiler invocation.
func splitShell(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				switch line[i] {
				case '\\':
					if i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
						i++
					}
				case '$', '`':
					return nil, fmt.Errorf("shell expansion %q in a compiler command", line[i])
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 < len(line) {
				i++
				cur.WriteByte(line[i])
			}
			inWord = true
		case strings.IndexByte("$`|&;<>()*?[", c) >= 0, (c == '#' || c == '~') && !inWord:
			return nil, fmt.Errorf("shell syntax %q in a compiler command", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}
