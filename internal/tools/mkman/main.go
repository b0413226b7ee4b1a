package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	fleetcli "ulp/fleet/cli"
	"ulp/livepatch/active"
	ulpcli "ulp/livepatch/cli"
)

func main() {
	out := flag.String("o", "", "write the pages into `DIR`")
	version := flag.String("version", "", "the `VERSION` the pages name")
	flag.Parse()
	if *out == "" || *version == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: mkman -o DIR -version VERSION")
		os.Exit(2)
	}
	if err := run(*out, *version); err != nil {
		fmt.Fprintf(os.Stderr, "mkman: %v\n", err)
		os.Exit(1)
	}
}

// envDefaults are the environment variables some default is read from
// when the command tree is built.
var envDefaults = []string{active.EnvDir, "XDG_STATE_HOME", "XDG_CONFIG_HOME", "ULPFLEET_CONFIG"}

func run(dir, version string) error {
	for _, v := range envDefaults {
		os.Unsetenv(v)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	home, _ := os.UserHomeDir()
	for _, root := range []*cobra.Command{ulpcli.NewRoot(), fleetcli.NewRoot()} {
		root.InitDefaultCompletionCmd()
		hdr := &doc.GenManHeader{Title: strings.ToUpper(root.Name()), Section: "1",
			Source: root.Name() + " " + version, Manual: "User Commands", Date: sourceDate()}
		_, exit := splitExitStatus(root.Long)
		if err := writeTree(dir, root, hdr, exit, home); err != nil {
			return err
		}
	}
	return nil
}

// sourceDate is SOURCE_DATE_EPOCH as a time (the Makefile sets it to the
// last commit's), or nil when it is unset or malformed: cobra then dates the
// pages today.
func sourceDate() *time.Time {
	s, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
	if err != nil {
		return nil
	}
	t := time.Unix(s, 0).UTC()
	return &t
}

// writeTree writes the page of cmd and of each command under it (but the
// help command); exit is the EXIT STATUS of a command without its own.
func writeTree(dir string, cmd *cobra.Command, hdr *doc.GenManHeader, exit, home string) error {
	long, own := splitExitStatus(cmd.Long)
	if own != "" {
		exit = own
	}
	cmd.Long = escapeMarkdown(long)
	cmd.DisableAutoGenTag = true
	for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags()} {
		fs.VisitAll(func(f *pflag.Flag) {
			if home != "" && home != "/" {
				f.DefValue = strings.ReplaceAll(f.DefValue, home, "~")
			}
		})
	}
	var buf bytes.Buffer
	if err := doc.GenMan(cmd, hdr, &buf); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	page := withSection(buf.String(), "EXIT STATUS", exit)
	name := strings.ReplaceAll(cmd.CommandPath(), " ", "-")
	if err := writeGzip(filepath.Join(dir, name+".1.gz"), page); err != nil {
		return err
	}
	for _, c := range cmd.Commands() {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			continue
		}
		if err := writeTree(dir, c, hdr, exit, home); err != nil {
			return err
		}
	}
	return nil
}

// splitExitStatus splits a command's long help into its description and
// the lines of its "EXIT STATUS" block (the rest of the text), if any.
func splitExitStatus(long string) (desc, exit string) {
	i := strings.Index("\n"+long, "\nEXIT STATUS\n")
	if i < 0 {
		return long, ""
	}
	return strings.TrimRight(long[:i], "\n") + "\n", strings.Trim(long[i+len("EXIT STATUS\n"):], "\n")
}

// escapeMarkdown keeps cobra's markdown converter from reading the plain
// text of a help as markup: '*' and '_' (globs, flag and variable names)
// and backslashes stand for themselves.
func escapeMarkdown(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `_`, `\_`, "`", "\\`", `<`, `\<`).Replace(s)
}

// withSection inserts a section with the preformatted text body before the
// page's SEE ALSO section (at the end when it has none).
func withSection(page, title, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".SH %s\n.nf\n", title)
	for line := range strings.Lines(body + "\n") {
		b.WriteString(roff(strings.TrimSuffix(line, "\n")) + "\n")
	}
	b.WriteString(".fi\n")
	if i := strings.Index(page, "\n.SH SEE ALSO\n"); i >= 0 {
		return page[:i+1] + b.String() + page[i+1:]
	}
	return page + b.String()
}

// writeGzip writes s gzipped without a name or time stamp, so the same
// text gives the same bytes.
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
