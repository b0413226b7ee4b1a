package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Schema is the "schema" field of build/bench.json.
const Schema = "ulp.bench/v1"

// Report is the content of build/bench.json.
type Report struct {
	Schema    string    `json:"schema"`
	Started   time.Time `json:"started"`
	DurationS float64   `json:"duration_s"`
	Machine   Machine   `json:"machine"`
	Config    Config    `json:"config"`
	Sections  []Section `json:"sections"`
}

// Section statuses.
const (
	StatusOK      = "ok"      // every figure measured
	StatusSkipped = "skipped" // not selected, or the machine cannot run it (Reason says why)
	StatusFailed  = "failed"  // an error stopped it (Reason); figures measured before it are kept
	StatusLater   = "later"   // belongs to an issue not done yet
)

// Section is one group of figures.
type Section struct {
	Name    string   `json:"name"`
	Title   string   `json:"title"`
	Status  string   `json:"status"`
	Reason  string   `json:"reason,omitempty"`
	Figures []Figure `json:"figures"`
	Notes   []string `json:"notes,omitempty"`
}

// Figure is one measured quantity: the median, minimum and maximum of Runs
// samples, in Unit.
type Figure struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Runs   int     `json:"runs"`
	// Anchor is the same quantity measured for another tool, when there is
	// one; Ratio is Median / Anchor.Value.
	Anchor *Anchor `json:"anchor,omitempty"`
	Ratio  float64 `json:"ratio,omitempty"`
}

// Anchor is a reference figure to compare with.
type Anchor struct {
	Value  float64 `json:"value"`
	Source string  `json:"source"`
}

// Summarize returns the figure of samples; with no samples, a figure of
// zero runs.
func Summarize(name, unit string, samples []float64) Figure {
	if len(samples) == 0 {
		return Figure{Name: name, Unit: unit}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Figure{Name: name, Unit: unit, Median: med, Min: s[0], Max: s[n-1], Runs: n}
}

// Against sets f's anchor and the ratio of f's median to it.
func (f Figure) Against(value float64, source string) Figure {
	f.Anchor = &Anchor{Value: value, Source: source}
	if value != 0 {
		f.Ratio = f.Median / value
	}
	return f
}

// samples collects named series of samples in the order they were first
// added, so that a section's figures come out in a stable order.
type samples struct {
	order []string
	unit  map[string]string
	vals  map[string][]float64
}

func newSamples() *samples {
	return &samples{unit: map[string]string{}, vals: map[string][]float64{}}
}

func (s *samples) add(name, unit string, v float64) {
	if _, ok := s.vals[name]; !ok {
		s.order = append(s.order, name)
		s.unit[name] = unit
	}
	s.vals[name] = append(s.vals[name], v)
}

// figures summarizes every series that has samples.
func (s *samples) figures() []Figure {
	var out []Figure
	for _, n := range s.order {
		if len(s.vals[n]) > 0 {
			out = append(out, Summarize(n, s.unit[n], s.vals[n]))
		}
	}
	return out
}

// us converts a duration to microseconds.
func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// format prints v with about three significant digits.
func format(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
