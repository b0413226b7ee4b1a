// Package udiff parses unified diffs (as diff -u, git diff and git
// format-patch write them, applied with patch -p1): which files a patch
// changes and which lines of each.
package udiff
