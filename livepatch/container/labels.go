package container

import (
	"regexp"
	"slices"
	"strings"
)

var labelRE = regexp.MustCompile(`(?i)\b(?:cve-\d{4}-\d{4,}|bsc#\d+|boo#\d+|jsc#[a-z]+-\d+)\b`)

// Labels returns the bug labels found in comments, in order of first
// appearance and without repeats: CVE-2024-2961, bsc#1200316 (boo# too),
// jsc#SLE-20049. Matching ignores case; the result is in the canonical case
// shown here.
func Labels(comments string) []string {
	var out []string
	for _, m := range labelRE.FindAllString(comments, -1) {
		l := canonicalLabel(m)
		if !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

func canonicalLabel(m string) string {
	lower := strings.ToLower(m)
	switch {
	case strings.HasPrefix(lower, "cve-"):
		return strings.ToUpper(m)
	case strings.HasPrefix(lower, "jsc#"):
		return "jsc#" + strings.ToUpper(m[4:])
	}
	return lower
}
