package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"ulp/builder/udiff"
)

// keepLineNumbers makes every line of the patched file after that the patch
// did not change keep the number it has in before, and returns the lines the
// patch changed in those numbers.
//
// A fix that adds lines moves every line below it, and with them the
// __LINE__ constants of the functions there (OpenSSL's ERR_raise passes
// OPENSSL_LINE into every error), so that unchanged functions would compile
// to other code than the library's. A `#line` directive before each hunk
// numbers its lines from the hunk's old start, and one after it resumes the
// old numbering; the compiler then gives unchanged functions the library's
// line numbers, in their code and in their debug information. A hunk next to
// a continued line (a multi-line macro) gets no directive there: inserting a
// line would change the macro.
func keepLineNumbers(ctx context.Context, before, after, name string) ([]udiff.Range, error) {
	out, err := exec.CommandContext(ctx, "diff", "-U0", "--label", "a/"+name, "--label", "b/"+name, before, after).Output()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1:
	default:
		return nil, fmt.Errorf("diff %s: %w", name, err)
	}
	p, err := udiff.Parse(out)
	if err != nil || len(p.Files) != 1 {
		return nil, fmt.Errorf("diff %s: %w", name, err)
	}
	src, err := os.ReadFile(after)
	if err != nil {
		return nil, err
	}
	text, changed := renumber(bytes.SplitAfter(src, []byte("\n")), p.Files[0].Hunks)
	fi, err := os.Stat(after)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(after, text, fi.Mode().Perm()); err != nil {
		return nil, err
	}
	return changed, nil
}

// renumber inserts the #line directives into lines (the patched file, each
// line with its newline) for the -U0 hunks of its diff from the original,
// and returns the new text and the changed lines in the original's numbers:
// each hunk's new lines, numbered from its old start, and the lines around
// what it removed.
func renumber(lines [][]byte, hunks []udiff.Hunk) ([]byte, []udiff.Range) {
	var out bytes.Buffer
	var changed []udiff.Range
	next := 0 // index in lines of the next line to copy
	directive := func(n int) {
		if out.Len() > 0 && !bytes.HasSuffix(bytes.TrimRight(out.Bytes(), "\r\n"), []byte("\\")) {
			out.WriteString("#line " + strconv.Itoa(n) + "\n")
		}
	}
	for _, h := range hunks {
		// With -U0, a hunk that adds nothing gives as NewStart the line
		// before the removal, and one that removes nothing gives as
		// OldStart the line before the insertion.
		oldFirst := h.OldStart // old number of the first line the hunk replaces
		if h.OldLines == 0 {
			oldFirst++
		}
		newFirst := h.NewStart // 1-based index in lines of the hunk's first new line
		if h.NewLines == 0 {
			newFirst++
		}
		for ; next < newFirst-1 && next < len(lines); next++ {
			out.Write(lines[next])
		}
		if h.NewLines > 0 {
			directive(oldFirst)
			for ; next < newFirst-1+h.NewLines && next < len(lines); next++ {
				out.Write(lines[next])
			}
			changed = append(changed, udiff.Range{Lo: oldFirst, Hi: oldFirst + h.NewLines - 1})
		}
		if h.OldLines > 0 {
			changed = append(changed, udiff.Range{Lo: max(oldFirst-1, 1), Hi: oldFirst + h.OldLines})
		}
		directive(oldFirst + h.OldLines)
	}
	for ; next < len(lines); next++ {
		out.Write(lines[next])
	}
	return out.Bytes(), changed
}
