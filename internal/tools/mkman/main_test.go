package main

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	ulpcli "ulp/livepatch/cli"
)

// page returns the text of the gzipped page at path.
func page(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPages writes the pages of ulp and ulpfleet: every command's page has
// the sections of a man page, its own EXIT STATUS when its help has one,
// and no default that depends on the machine or the user.
func TestPages(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600") // 2026-01-01
	t.Setenv("LIBPULP_ACTIVE_DIR", "/machine/specific")
	if err := run(dir, "9.9.9"); err != nil {
		t.Fatal(err)
	}
	pages, err := filepath.Glob(filepath.Join(dir, "*.1.gz"))
	if err != nil || len(pages) < 30 {
		t.Fatalf("%d pages, %v", len(pages), err)
	}
	home, _ := os.UserHomeDir()
	cpus := "=" + strconv.Itoa(2*runtime.NumCPU()) + "\n"
	for _, p := range pages {
		text := page(t, p)
		name := strings.TrimSuffix(filepath.Base(p), ".1.gz")
		for _, want := range []string{`.TH "` + strings.ToUpper(strings.SplitN(name, "-", 2)[0]) + `" "1" "Jan 2026" "`,
			".SH NAME\n" + name + " - ", ".SH SYNOPSIS\n", ".SH DESCRIPTION\n", ".SH OPTIONS\n", ".SH EXIT STATUS\n.nf\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
		if home != "" && home != "/" && strings.Contains(text, home) || strings.Contains(text, "/machine/specific") {
			t.Errorf("%s bakes in a machine's default:\n%s", name, text)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ulp-help.1.gz")); err == nil {
		t.Error("a page for the help command")
	}
	// The trigger page: the summary its parent lists, -j without a CPU count.
	var short string
	for _, c := range ulpcli.NewRoot().Commands() {
		if c.Name() == "trigger" {
			short = c.Short
		}
	}
	trigger := page(t, filepath.Join(dir, "ulp-trigger.1.gz"))
	if !strings.Contains(trigger, "ulp-trigger - "+short+"\n") || !strings.Contains(trigger, `\fB--jobs\fP=0`) || strings.Contains(trigger, `\fB--jobs\fP`+cpus) {
		t.Errorf("ulp-trigger page:\n%s", trigger)
	}
	// check's own exit statuses, the root's for a command without its own.
	if check := page(t, filepath.Join(dir, "ulp-check.1.gz")); !strings.Contains(check, ".SH EXIT STATUS\n.nf\n  0  the patch is applied\n  1  the patch is not applied\n") {
		t.Errorf("ulp-check page:\n%s", check)
	}
	if dump := page(t, filepath.Join(dir, "ulp-dump.1.gz")); !strings.Contains(dump, "  3  a process may have been left inconsistent") {
		t.Errorf("ulp-dump page lacks the root's exit statuses:\n%s", dump)
	}
	if sel := page(t, filepath.Join(dir, "ulp-preload-enable.1.gz")); !strings.Contains(sel, `\fBulp-preload(1)\fP`) {
		t.Errorf("ulp-preload-enable page does not refer to its parent:\n%s", sel)
	}
}

func TestSplitExitStatus(t *testing.T) {
	tests := []struct{ long, desc, exit string }{
		{"text\n", "text\n", ""},
		{"text.\n\nEXIT STATUS\n  0  ok\n  1  not\n", "text.\n", "  0  ok\n  1  not"},
		{"EXIT STATUS\n  0  ok\n", "\n", "  0  ok"},
		{"see EXIT STATUS below\n", "see EXIT STATUS below\n", ""},
	}
	for _, tt := range tests {
		if desc, exit := splitExitStatus(tt.long); desc != tt.desc || exit != tt.exit {
			t.Errorf("splitExitStatus(%q) = %q, %q; want %q, %q", tt.long, desc, exit, tt.desc, tt.exit)
		}
	}
}

func TestRoff(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "plain",
		`a\b`:          `a\eb`,
		".starts":      `\&.starts`,
		"'quote":       `\&'quote`,
		"  .indented":  "  .indented",
		"first. Then.": "first. Then.",
	} {
		if got := roff(in); got != want {
			t.Errorf("roff(%q) = %q, want %q", in, got, want)
		}
	}
}
