package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	out := flag.String("o", "", "write the pages into `DIR`")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mkman -o DIR BINARY...")
		os.Exit(2)
	}
	for _, bin := range flag.Args() {
		if err := writePages(*out, bin); err != nil {
			fmt.Fprintf(os.Stderr, "mkman: %v\n", err)
			os.Exit(1)
		}
	}
}

// command is one node of a binary's command tree, as its help shows it.
type command struct {
	path  []string // e.g. ["ulp", "trigger"]
	short string
	help  string
	subs  []command
}

func writePages(dir, bin string) error {
	root, err := walk(bin, []string{filepath.Base(bin)}, "")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return write(dir, root, nil)
}

func walk(bin string, path []string, short string) (command, error) {
	c := command{path: path, short: short}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := append(append([]string{}, path[1:]...), "--help")
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return c, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, stderr.String())
	}
	c.help = string(b)
	if c.short == "" {
		c.short = firstSentence(c.help)
	}
	for _, s := range listed(c.help) {
		if s[0] == "help" {
			continue
		}
		sub, err := walk(bin, append(append([]string{}, path...), s[0]), s[1])
		if err != nil {
			return c, err
		}
		c.subs = append(c.subs, sub)
	}
	return c, nil
}

// firstSentence returns the first sentence of the first paragraph of a
// help text (the root command shows its long description, not a summary).
func firstSentence(help string) string {
	para, _, _ := strings.Cut(strings.TrimSpace(help), "\n\n")
	para = strings.Join(strings.Fields(para), " ")
	if i := strings.Index(para, ". "); i >= 0 {
		return para[:i+1]
	}
	return para
}

// listed returns the name and summary of each command under "Available
// Commands:" (and cobra's group headings) in a help text.
func listed(help string) [][2]string {
	var out [][2]string
	in := false
	for line := range strings.Lines(help) {
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "Available Commands:" || line == "Additional Commands:":
			in = true
		case line == "" || !strings.HasPrefix(line, "  "):
			in = false
		case in:
			name, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
			out = append(out, [2]string{name, strings.TrimSpace(rest)})
		}
	}
	return out
}

func write(dir string, c command, parent *command) error {
	name := strings.Join(c.path, "-")
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %q 1 \"\" %q \"User Commands\"\n", strings.ToUpper(name), c.path[0])
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", name, roff(c.short))
	b.WriteString(".SH DESCRIPTION\n.nf\n")
	for line := range strings.Lines(c.help) {
		b.WriteString(roffLine(line))
	}
	b.WriteString(".fi\n")
	var see []string
	if parent != nil {
		see = append(see, strings.Join(parent.path, "-"))
	}
	for _, s := range c.subs {
		see = append(see, strings.Join(s.path, "-"))
	}
	if len(see) > 0 {
		b.WriteString(".SH SEE ALSO\n")
		for i, s := range see {
			sep := ","
			if i == len(see)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, ".BR %s (1)%s\n", s, sep)
		}
	}
	if err := writeGzip(filepath.Join(dir, name+".1.gz"), b.String()); err != nil {
		return err
	}
	var errs []error
	for _, s := range c.subs {
		errs = append(errs, write(dir, s, &c))
	}
	return errors.Join(errs...)
}

// writeGzip writes s gzipped without a name or time stamp, so the same
// help gives the same bytes.
func writeGzip(path, s string) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write([]byte(s)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// roff escapes text for a roff line: backslashes and leading dots or quotes.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func roffLine(line string) string {
	nl := strings.HasSuffix(line, "\n")
	line = roff(strings.TrimSuffix(line, "\n"))
	if nl || line != "" {
		line += "\n"
	}
	return line
}
