package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"ulp/internal/atomicfile"
)

// Config holds the sizes of a run; the defaults finish in under 10 minutes
// on a 2-core machine.
type Config struct {
	Build      string   `json:"-"`           // folder with ulp, ulpfleet and libpulp.so.0
	Out        string   `json:"-"`           // the JSON report ("" for none)
	Only       []string `json:"sections"`    // sections to run
	Runs       int      `json:"runs"`        // samples per figure (process-level sections)
	Threads    []int    `json:"threads"`     // thread counts of the pause targets
	Calls      int      `json:"calls"`       // calls per per-call sample
	Funcs      int      `json:"funcs"`       // functions of the big container
	FleetHosts int      `json:"fleet_hosts"` // hosts of the fleet section
	FleetRuns  int      `json:"fleet_runs"`  // rollouts per fan-out
	Fanouts    []int    `json:"fanouts"`
	HostProcs  []int    `json:"host_procs"` // children of the whole-host section
	HostRuns   int      `json:"host_runs"`  // samples per size of the whole-host section
	// Libpulp is the folder of the prebuilt libpulp 0.3.17 (bin/ulp,
	// lib/libpulp.so.0.0.0) of the side-by-side section; "" for
	// testenv.LibpulpDir.
	Libpulp      string `json:"libpulp,omitempty"`
	LibpulpIdle  []int  `json:"libpulp_idle"`  // idle threads besides the spinning one, side by side
	LibpulpProcs []int  `json:"libpulp_procs"` // children of the side-by-side whole host
}

// sectionNames lists every section in run order.
var sectionNames = []string{"libpulp", "trigger", "percall", "footprint", "container", "fleet", "host"}

func defaultConfig() Config {
	build := os.Getenv("ULP_BUILD_DIR")
	if build == "" {
		build = "build"
	}
	return Config{Build: build, Out: filepath.Join(build, "bench.json"), Only: sectionNames, Runs: 15,
		Threads: []int{1, 8, 64}, Calls: 10_000_000, Funcs: 1000, FleetHosts: 32, FleetRuns: 5,
		Fanouts: []int{1, 8, 32}, HostProcs: []int{100}, HostRuns: 5,
		LibpulpIdle: []int{0, 1000}, LibpulpProcs: []int{100}}
}

func main() {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&cfg.Build, "build", cfg.Build, "folder with the artifacts of make (ulp, ulpfleet, libpulp.so.0)")
	fs.StringVar(&cfg.Out, "o", cfg.Out, "write the JSON report here (\"\" for none)")
	only := fs.String("only", strings.Join(cfg.Only, ","), "sections to run, comma separated: "+strings.Join(sectionNames, ","))
	fs.IntVar(&cfg.Runs, "runs", cfg.Runs, "samples per figure of the process sections")
	threads := fs.String("threads", "1,8,64", "thread counts of the pause targets (larger: 1,8,64,256)")
	fs.IntVar(&cfg.Calls, "calls", cfg.Calls, "calls per per-call sample")
	fs.IntVar(&cfg.Funcs, "funcs", cfg.Funcs, "functions in the container of the packer and dump benchmarks")
	fs.IntVar(&cfg.FleetHosts, "fleet-hosts", cfg.FleetHosts, "sshd hosts of the fleet benchmark")
	fs.IntVar(&cfg.FleetRuns, "fleet-runs", cfg.FleetRuns, "rollouts per fan-out")
	fanouts := fs.String("fanouts", "1,8,32", "fleet fan-outs (ulpfleet --parallel)")
	hostProcs := fs.String("host-procs", "100", "processes of the whole-host section (larger: 100,1000,4000)")
	fs.IntVar(&cfg.HostRuns, "host-runs", cfg.HostRuns, "samples per size of the whole-host section")
	fs.StringVar(&cfg.Libpulp, "libpulp", "", "folder of the prebuilt libpulp 0.3.17 of the side-by-side section (default $ULP_LIBPULP_DIR, else ../shared/anchors/libpulp-0.3.17 from the module's top folder)")
	libpulpIdle := fs.String("libpulp-idle", "0,1000", "side by side: idle threads besides the spinning one")
	libpulpProcs := fs.String("libpulp-procs", "100", "side by side: children of the whole-host samples (larger: 100,1000)")
	verbose := fs.Bool("v", false, "log each step on stderr")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	var err error
	cfg.Only = strings.Split(*only, ",")
	if cfg.Threads, err = parseInts(*threads); err == nil {
		cfg.Fanouts, err = parseInts(*fanouts)
	}
	if err == nil {
		cfg.HostProcs, err = parseInts(*hostProcs)
	}
	if err == nil {
		cfg.LibpulpIdle, err = parseCounts(*libpulpIdle)
	}
	if err == nil {
		cfg.LibpulpProcs, err = parseInts(*libpulpProcs)
	}
	if err == nil {
		err = cfg.validate()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	rep, err := Run(ctx, cfg, log)
	stop()
	if rep != nil {
		PrintTable(os.Stdout, rep)
		if cfg.Out != "" {
			if werr := WriteJSON(cfg.Out, rep); werr != nil {
				err = errors.Join(err, werr)
			} else {
				fmt.Printf("\nwrote %s\n", cfg.Out)
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseCounts parses non-negative integers separated by commas.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: want integers of 0 or more separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func (c Config) validate() error {
	for _, s := range c.Only {
		known := false
		for _, n := range sectionNames {
			known = known || s == n
		}
		if !known {
			return fmt.Errorf("unknown section %q (known: %s)", s, strings.Join(sectionNames, ","))
		}
	}
	if c.Runs < 1 || c.Calls < 1 || c.Funcs < 1 || c.FleetHosts < 1 || c.FleetRuns < 1 || c.HostRuns < 1 {
		return errors.New("-runs, -calls, -funcs, -fleet-hosts, -fleet-runs and -host-runs must be at least 1")
	}
	return nil
}

func (c Config) selected(name string) bool {
	for _, s := range c.Only {
		if s == name {
			return true
		}
	}
	return false
}

// Run measures every selected section and returns the report. A section
// that fails is recorded as failed and the others still run; the error
// joins every failure.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Report, error) {
	start := time.Now()
	rep := &Report{Schema: Schema, Started: start.UTC(), Machine: probeMachine(ctx), Config: cfg}
	e, err := newEnv(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer e.close()
	sections := map[string]func(context.Context, *env) Section{
		"libpulp":   libpulpSection,
		"trigger":   triggerSection,
		"percall":   percallSection,
		"footprint": footprintSection,
		"container": containerSection,
		"fleet":     fleetSection,
		"host":      hostSection,
	}
	var errs []error
	for _, name := range sectionNames {
		if !cfg.selected(name) {
			continue
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		log.Info("section", "name", name)
		s := sections[name](ctx, e)
		s.Name = name
		if s.Status == "" {
			s.Status = StatusOK
		}
		if s.Figures == nil {
			s.Figures = []Figure{}
		}
		if s.Status == StatusFailed {
			errs = append(errs, fmt.Errorf("%s: %s", name, s.Reason))
		}
		rep.Sections = append(rep.Sections, s)
	}
	rep.Machine.LoadEnd = loadAverage()
	rep.DurationS = time.Since(start).Seconds()
	return rep, errors.Join(errs...)
}

// failed returns s marked failed with err, keeping the figures measured so
// far.
func failed(s Section, smp *samples, err error) Section {
	if smp != nil {
		s.Figures = smp.figures()
	}
	s.Status = StatusFailed
	s.Reason = err.Error()
	return s
}

// PrintTable prints the report as a table.
func PrintTable(w io.Writer, rep *Report) {
	m := rep.Machine
	fmt.Fprintf(w, "ulp bench %s, %.0f s\n", rep.Started.Format(time.RFC3339), rep.DurationS)
	fmt.Fprintf(w, "machine: %s, %d cores, %s, kernel %s, glibc %s, %s, load %s -> %s\n",
		m.CPU, m.Cores, m.OS, m.Kernel, m.Glibc, m.Go, m.LoadStart, m.LoadEnd)
	for _, s := range rep.Sections {
		fmt.Fprintf(w, "\n== %s: %s", s.Name, s.Title)
		if s.Status != StatusOK {
			fmt.Fprintf(w, " [%s: %s]", s.Status, s.Reason)
		}
		fmt.Fprintln(w)
		if len(s.Figures) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "figure\tmedian\tmin\tmax\tunit\truns\tvs anchor\t")
			for _, f := range s.Figures {
				anchor := ""
				if f.Anchor != nil {
					anchor = fmt.Sprintf("%.3gx of %s %s", f.Ratio, format(f.Anchor.Value), f.Anchor.Source)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", f.Name, format(f.Median), format(f.Min), format(f.Max), f.Unit, f.Runs, anchor)
			}
			tw.Flush()
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
}

// WriteJSON writes the report to path atomically (package atomicfile).
func WriteJSON(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}
