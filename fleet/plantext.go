package fleet

import (
	"fmt"
	"io"
	"strings"

	"ulp/internal/escape"
	"ulp/remote"
)

// WriteText prints the plan for people: the artifacts, then every wave with
// every host and its steps, exactly as Run will execute them.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	nc := len(p.Containers)
	what := string(p.Action)
	if nc > 0 {
		what += fmt.Sprintf(" %d container%s", nc, plural(nc))
	}
	if p.RevertAll != "" {
		what += " with --revert-all=" + p.RevertAll
	}
	fmt.Fprintf(&b, "plan: %s on %d host%s in %d wave%s\n", what, p.NumHosts(), plural(p.NumHosts()), len(p.Waves), plural(len(p.Waves)))
	fmt.Fprintf(&b, "  agent %s sha256:%s %d bytes\n", escape.Text(p.Agent.Name), p.Agent.SHA256[:16], p.Agent.Size)
	for _, c := range p.Containers {
		fmt.Fprintf(&b, "  container %s sha256:%s %d bytes", escape.Text(c.Name), c.SHA256[:16], c.Size)
		if c.PatchID != "" {
			fmt.Fprintf(&b, ", patch id %.16s", c.PatchID)
		}
		b.WriteString("\n")
	}
	for i, wv := range p.Waves {
		fmt.Fprintf(&b, "wave %d: %s (%d host%s)\n", i+1, escape.Text(wv.Name), len(wv.Hosts), plural(len(wv.Hosts)))
		for _, h := range wv.Hosts {
			user := h.Host.User
			if user == "" {
				user = "(default user)"
			}
			via := ""
			if h.Jump != "" {
				via = "  via " + h.Jump
			}
			fmt.Fprintf(&b, "  %s  %s  %s%s\n", escape.Text(h.Host.Name), escape.Text(h.Host.Address()), escape.Text(user), escape.Text(via))
			for _, s := range h.Steps {
				switch s.Kind {
				case StepUpload:
					fmt.Fprintf(&b, "    upload %s -> %s (skipped when the sha256 matches)\n", escape.Text(s.Artifact), escape.Text(s.Path))
				default:
					fmt.Fprintf(&b, "    run %s\n", remote.Quote(s.Argv))
				}
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
