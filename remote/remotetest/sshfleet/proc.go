package sshfleet

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
)

// answerTimeout bounds the wait for one line of a Proc.
const answerTimeout = 20 * time.Second

// Proc is a program running inside a host, answering one line per line it
// is sent (the trigger fixture's app: "value" → the current calc_value).
type Proc struct {
	Host *Host
	in   io.WriteCloser
	out  *bufio.Reader
}

// Start runs bin inside h's namespaces with env added to this process's
// environment (e.g. LD_PRELOAD of the runtime) and waits for its first
// line, which must start with "ready". The process is killed and reaped
// when tb ends (and with the host).
func (h *Host) Start(tb testing.TB, env []string, bin string, args ...string) *Proc {
	tb.Helper()
	cmd, err := h.Command(context.Background(), bin, args...)
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Env = append(os.Environ(), env...)
	in, out := testenv.StartPiped(tb, cmd)
	p := &Proc{Host: h, in: in, out: bufio.NewReader(out)}
	if line := p.Ask(tb, ""); !strings.HasPrefix(line, "ready") {
		tb.Fatalf("%s: %s: readiness line %q", h.Name, bin, line)
	}
	return p
}

// Ask sends q (nothing when q is empty) and returns the next line without
// its newline, failing tb after 20 s.
func (p *Proc) Ask(tb testing.TB, q string) string {
	tb.Helper()
	if q != "" {
		if _, err := io.WriteString(p.in, q+"\n"); err != nil {
			tb.Fatalf("%s: %v", p.Host.Name, err)
		}
	}
	type answer struct {
		s   string
		err error
	}
	ch := make(chan answer, 1)
	go func() { // ends when the process answers or dies (killed in Cleanup)
		s, err := p.out.ReadString('\n')
		ch <- answer{strings.TrimSpace(s), err}
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			tb.Fatalf("%s: read: %v", p.Host.Name, a.err)
		}
		return a.s
	case <-time.After(answerTimeout):
		tb.Fatalf("%s: no answer in %v", p.Host.Name, answerTimeout)
	}
	return ""
}
