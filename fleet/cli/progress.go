package cli

import (
	"fmt"
	"io"
	"strings"

	"ulp/fleet"
)

// progress draws one status line on a terminal: a bar, hosts done, ok and
// failed, and the current wave. Observe calls are serialized by fleet.
type progress struct {
	w                  io.Writer
	plan               *fleet.Plan
	wave               int
	done, ok, bad, run int
	drawn              bool
}

func (p *progress) observe(e fleet.Event) {
	switch e.Kind {
	case fleet.WaveStarted:
		p.wave = e.Wave
	case fleet.HostStarted:
		p.run++
	case fleet.HostDone:
		p.run--
		p.done++
		switch e.Result.State {
		case fleet.StateOK:
			p.ok++
		case fleet.StateError, fleet.StateFailed:
			p.bad++
		}
	}
	p.draw(e.Total)
}

func (p *progress) draw(total int) {
	const width = 30
	fill := 0
	if total > 0 {
		fill = p.done * width / total
	}
	bar := strings.Repeat("#", fill) + strings.Repeat("-", width-fill)
	wave := ""
	if p.wave < len(p.plan.Waves) {
		wave = fmt.Sprintf("wave %d/%d %s", p.wave+1, len(p.plan.Waves), p.plan.Waves[p.wave].Name)
	}
	fmt.Fprintf(p.w, "\r\033[K[%s] %d/%d hosts  %d ok  %d failed  %d running  %s", bar, p.done, total, p.ok, p.bad, p.run, wave)
	p.drawn = true
}

// clear erases the status line.
func (p *progress) clear() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
