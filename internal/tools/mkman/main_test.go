package main

import (
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ulp/internal/testenv"
)

func TestListed(t *testing.T) {
	help := "Long text.\n\nUsage:\n  ulp [command]\n\nAvailable Commands:\n  check       Tell whether\n  help        Help about any command\n  preload     Preload the runtime\n\nFlags:\n  -h, --help   help\n"
	got := listed(help)
	want := [][2]string{{"check", "Tell whether"}, {"help", "Help about any command"}, {"preload", "Preload the runtime"}}
	if !slices.Equal(got, want) {
		t.Errorf("listed = %q, want %q", got, want)
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
	if got := firstSentence("One line\ngoes on. Second.\n\nOther paragraph."); got != "One line goes on." {
		t.Errorf("firstSentence = %q", got)
	}
}

// TestPages writes the pages of the real ulp and checks a few of them.
func TestPages(t *testing.T) {
	bin := testenv.Artifact(t, "ulp")
	dir := t.TempDir()
	if err := writePages(dir, bin); err != nil {
		t.Fatal(err)
	}
	// The NAME line carries the command's one-line summary, as the parent's
	// --help lists it.
	help, err := exec.Command(bin, "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	var summary string
	for _, line := range strings.Split(string(help), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "trigger" {
			summary = strings.Join(f[1:], " ")
		}
	}
	if summary == "" {
		t.Fatalf("no trigger line in ulp --help:\n%s", help)
	}
	for page, want := range map[string]string{
		"ulp.1.gz":                ".TH \"ULP\" 1",
		"ulp-trigger.1.gz":        "ulp-trigger \\- " + summary,
		"ulp-preload-enable.1.gz": ".BR ulp-preload (1)",
	} {
		f, err := os.Open(filepath.Join(dir, page))
		if err != nil {
			t.Error(err)
			continue
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		f.Close()
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %v, lacks %q:\n%s", page, err, want, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ulp-help.1.gz")); err == nil {
		t.Error("a page for the help command")
	}
}
