package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"ulp/livepatch/report"
	"ulp/remote"
)

// Errors of a rollout, for errors.Is.
var (
	// ErrStopped means the canary gate or the failure threshold stopped the
	// rollout: some hosts were not attempted.
	ErrStopped = errors.New("rollout stopped")
	// ErrProcessFailed means the agent ran and reported ERROR for at least
	// one process, or a process that may be inconsistent.
	ErrProcessFailed = errors.New("processes failed")
	// ErrInternal means a host's goroutine panicked (a bug in ulpfleet).
	ErrInternal = errors.New("internal error")
	// ErrHealth means the health check failed on the host.
	ErrHealth = errors.New("health check failed")
	// ErrLocked means another rollout held the host's lock for longer than
	// LockWait seconds.
	ErrLocked = errors.New("host locked by another rollout")
)

// DefaultParallel is the default of Rollout.Parallel.
const DefaultParallel = 16

// Rollout executes plans. Its fields are read-only during Run; one Rollout
// may run several plans one after the other.
type Rollout struct {
	Dialer Dialer
	// Parallel is the number of hosts worked on at once within a wave (a
	// sliding window: a new host starts as soon as one finishes).
	Parallel int
	// UploadParallel is the number of uploads in flight at once across all
	// hosts; 0 is Parallel (every host in flight may upload).
	UploadParallel int
	// MaxFailures is the number of failed hosts tolerated: once more hosts
	// than this have failed, no new host starts, and no wave after a canary
	// wave starts. 0 stops at the first failure.
	MaxFailures int
	// MaxFailPercent, when positive, also stops the rollout after a wave in
	// which more than this percentage of the wave's hosts failed (exceeded,
	// not reached: 25 with 1 of 4 failed goes on). It only matters when
	// MaxFailures allows that many failures.
	MaxFailPercent float64
	// HostTimeout bounds the work on one host (0: no bound).
	HostTimeout time.Duration
	// Log receives one Info line per finished host (its result class, not
	// its error, which is in the HostResult) and the steps at Debug; nil
	// discards.
	Log *slog.Logger
	// Observe, when set, is called when a wave starts and when a host
	// starts and finishes. Calls come from several goroutines, one at a
	// time, and must not block for long.
	Observe func(Event)
}

// EventKind says what an Event reports.
type EventKind int

// The events.
const (
	WaveStarted EventKind = iota
	HostStarted
	HostDone
)

// Event is a progress notification.
type Event struct {
	Kind  EventKind
	Wave  int    // index into Plan.Waves
	Host  string // HostStarted, HostDone
	Total int    // hosts in the plan
	// Result is set for HostDone.
	Result *HostResult
}

// State is the coarse outcome of one host.
type State string

// The states.
const (
	StateOK           State = "ok"            // every step done, no process reported ERROR
	StateError        State = "error"         // the agent ran; some process reported ERROR or may be inconsistent
	StateFailed       State = "failed"        // a step failed: connect, upload, or the agent itself
	StateInterrupted  State = "interrupted"   // cancelled while in progress
	StateNotAttempted State = "not_attempted" // never started (stopped or cancelled before)
)

// HostResult is the outcome of one host.
type HostResult struct {
	Host  string
	Wave  int
	State State
	// Phase is the step that failed: "connect" or a StepKind.
	Phase string
	// Err is nil for StateOK and StateNotAttempted; otherwise a *HostError.
	Err error
	// Processes are the agent's per-process records of every trigger step.
	Processes []report.Process
	// Patched, Skipped and Failed count distinct processes: Patched had at
	// least one SUCCESS, Failed at least one ERROR, Skipped only SKIPPED.
	Patched, Skipped, Failed int
	// Inconsistent is the agent's count of processes that may have been
	// left inconsistent.
	Inconsistent int
	// Inaccessible is the agent's count of processes it left out because
	// its user may not inspect them (a login user without --sudo): they
	// were not patched, so the host counts as an error.
	Inaccessible int
	// AgentRan is set once a trigger step started on the host: from then on
	// processes there may have changed, whatever the host's State (a health
	// check that failed after the triggers, a timeout or a lost connection
	// during one).
	AgentRan bool
	// Uploaded and Unchanged count artifacts sent and artifacts already on
	// the host with the right sha256.
	Uploaded, Unchanged int
	// Messages is the output of `ulp messages --json` (messages plans).
	Messages []report.ProcessMessages
	// Patches is the output of `ulp patches --json` (status plans).
	Patches []report.PatchedProcess
	// Preflight holds the key=value facts of a ping plan: arch, kernel,
	// staging_exists, free_kib, mount_options, agent_version (this
	// controller's agent), agent (present or missing), agents (the versions
	// in the staging folder), runtime_library, preload,
	// runtime_processes.
	Preflight map[string]string
	// Removed lists the files a clean plan removed.
	Removed  []string
	Duration time.Duration
}

// Failed reports whether the host counts as a failure for the gate.
func (hr *HostResult) failed() bool { return hr.State == StateError || hr.State == StateFailed }

// HostError is the error of one host: where it failed and why.
type HostError struct {
	Host  string
	Phase string
	Err   error
}

func (e *HostError) Error() string { return fmt.Sprintf("host %s: %s: %v", e.Host, e.Phase, e.Err) }
func (e *HostError) Unwrap() error { return e.Err }

// Result is the outcome of a rollout.
type Result struct {
	Action Action
	// Hosts holds one result per planned host, in plan order.
	Hosts []HostResult
	// Stopped says why the gate or threshold stopped the rollout ("" when
	// it was not stopped).
	Stopped string
	// Cancelled is set when the context ended before the rollout did.
	Cancelled bool
	Duration  time.Duration
}

// Counts counts hosts per state.
func (r *Result) Counts() map[State]int {
	c := map[State]int{}
	for _, h := range r.Hosts {
		c[h.State]++
	}
	return c
}

// Run executes p. Waves run one after the other; within a wave up to
// Parallel hosts run at once. It returns the result of every host and the
// joined error of every failed host, plus ErrStopped (wrapped) when the
// gate or threshold stopped the rollout and ctx's error when ctx ended.
// Hosts in flight when ctx ends are cancelled and reported interrupted;
// hosts not yet started are reported not attempted.
func (r *Rollout) Run(ctx context.Context, p *Plan) (*Result, error) {
	start := time.Now()
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	parallel := r.Parallel
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	upPar := r.UploadParallel
	if upPar <= 0 {
		upPar = parallel
	}
	uploads := make(chan struct{}, upPar)
	total := p.NumHosts()
	res := &Result{Action: p.Action, Hosts: make([]HostResult, total)}
	offset := make([]int, len(p.Waves))
	n := 0
	for wi, w := range p.Waves {
		offset[wi] = n
		for _, h := range w.Hosts {
			res.Hosts[n] = HostResult{Host: h.Host.Name, Wave: wi, State: StateNotAttempted}
			n++
		}
	}
	var obsMu sync.Mutex
	observe := func(e Event) {
		if r.Observe != nil {
			e.Total = total
			obsMu.Lock()
			r.Observe(e)
			obsMu.Unlock()
		}
	}
	var failures atomic.Int64
	tripped := func() bool { return failures.Load() > int64(r.MaxFailures) }

	for wi, w := range p.Waves {
		if ctx.Err() != nil || tripped() || res.Stopped != "" {
			break
		}
		observe(Event{Kind: WaveStarted, Wave: wi})
		var g errgroup.Group
		g.SetLimit(parallel)
		for j := range w.Hosts {
			if ctx.Err() != nil || tripped() {
				break
			}
			slot := &res.Hosts[offset[wi]+j]
			hp := &w.Hosts[j]
			g.Go(func() error {
				// The slot may have opened after the threshold tripped.
				if ctx.Err() != nil || tripped() {
					return nil
				}
				observe(Event{Kind: HostStarted, Wave: wi, Host: hp.Host.Name})
				hlog := log.With("host", hp.Host.Name)
				hr := r.host(ctx, hlog, wi, hp, uploads)
				// Progress only: the error itself is in the result.
				hlog.Info("host done", "wave", wi+1, "result", hr.Class(), "patched", hr.Patched,
					"failed", hr.Failed, "duration", hr.Duration.Round(time.Millisecond))
				if hr.failed() {
					failures.Add(1)
				}
				*slot = hr
				observe(Event{Kind: HostDone, Wave: wi, Host: hp.Host.Name, Result: &hr})
				return nil
			})
		}
		_ = g.Wait() // host goroutines never return errors
		failedHere := 0
		for _, h := range res.Hosts[offset[wi] : offset[wi]+len(w.Hosts)] {
			if h.failed() {
				failedHere++
			}
		}
		if pct := float64(failedHere) * 100 / float64(len(w.Hosts)); ctx.Err() == nil && !tripped() &&
			r.MaxFailPercent > 0 && pct > r.MaxFailPercent {
			res.Stopped = fmt.Sprintf("failure threshold: %d of %d hosts failed in wave %d (%s), more than --max-fail %g%%",
				failedHere, len(w.Hosts), wi+1, w.Name, r.MaxFailPercent)
		}
		if ctx.Err() == nil && tripped() {
			gate := "failure threshold"
			if w.Canary {
				gate = "canary gate"
			}
			res.Stopped = fmt.Sprintf("%s: %d host(s) failed, more than --max-failures %d (in wave %d, %s)",
				gate, failures.Load(), r.MaxFailures, wi+1, w.Name)
		}
	}
	res.Cancelled = ctx.Err() != nil
	res.Duration = time.Since(start)
	var errs []error
	for _, h := range res.Hosts {
		if h.Err != nil {
			errs = append(errs, h.Err)
		}
	}
	if res.Stopped != "" && res.Counts()[StateNotAttempted] > 0 {
		errs = append(errs, fmt.Errorf("%w: %s", ErrStopped, res.Stopped))
	} else if res.Stopped != "" {
		res.Stopped = "" // the last hosts failed: nothing was left to stop
	}
	if res.Cancelled {
		errs = append(errs, ctx.Err())
	}
	return res, errors.Join(errs...)
}

// host runs the steps of one host.
func (r *Rollout) host(ctx context.Context, log *slog.Logger, wave int, hp *HostPlan, uploads chan struct{}) (hr HostResult) {
	start := time.Now()
	hr = HostResult{Host: hp.Host.Name, Wave: wave}
	defer func() {
		if v := recover(); v != nil {
			log.Error("panic", "panic", v, "stack", string(debug.Stack()))
			hr.State, hr.Phase = StateFailed, "internal"
			hr.Err = &HostError{Host: hp.Host.Name, Phase: "internal", Err: fmt.Errorf("%w: %v", ErrInternal, v)}
		}
		hr.Duration = time.Since(start)
	}()
	hctx := ctx
	if r.HostTimeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, r.HostTimeout)
		defer cancel()
	}
	fail := func(phase string, err error) HostResult {
		hr.countProcesses()
		hr.State, hr.Phase = StateFailed, phase
		if ctx.Err() != nil {
			hr.State = StateInterrupted
		}
		if hctx.Err() != nil && !errors.Is(err, hctx.Err()) {
			err = fmt.Errorf("%w (%w)", hctx.Err(), err)
		}
		hr.Err = &HostError{Host: hp.Host.Name, Phase: phase, Err: err}
		return hr
	}
	log.Debug("connect", "addr", hp.Host.Address())
	conn, err := r.Dialer.Dial(hctx, hp)
	if err != nil {
		return fail("connect", err)
	}
	defer conn.Close()
	for _, s := range hp.Steps {
		log.Debug("step", "kind", s.Kind, "path", s.Path)
		if err := hr.step(hctx, conn, &s, uploads); err != nil {
			return fail(string(s.Kind), err)
		}
	}
	hr.finish()
	return hr
}

// finish sets the state of a host whose steps all ran: OK, or ERROR when
// a process reported ERROR, may be inconsistent, or could not be inspected.
func (hr *HostResult) finish() {
	hr.countProcesses()
	hr.State = StateOK
	if hr.Failed > 0 || hr.Inconsistent > 0 || hr.Inaccessible > 0 {
		hr.State, hr.Phase = StateError, string(StepTrigger)
		err := fmt.Errorf("%w: %d process(es) reported ERROR, %d patched", ErrProcessFailed, hr.Failed, hr.Patched)
		switch {
		case hr.Inconsistent > 0:
			err = fmt.Errorf("%w: %d process(es) may be inconsistent and should be restarted", ErrProcessFailed, hr.Inconsistent)
		case hr.Failed == 0:
			err = fmt.Errorf("%w: %d process(es) not inspected: the agent's user may not read them (--sudo runs it as root), %d patched",
				ErrProcessFailed, hr.Inaccessible, hr.Patched)
		}
		hr.Err = &HostError{Host: hr.Host, Phase: hr.Phase, Err: err}
	}
}

// step runs one step of the host on conn, recording what it found.
func (hr *HostResult) step(ctx context.Context, conn Conn, s *Step, uploads chan struct{}) error {
	switch s.Kind {
	case StepUpload:
		return hr.upload(ctx, conn, s, uploads)
	case StepTrigger:
		return hr.trigger(ctx, conn, s)
	case StepPatches:
		return hr.patches(ctx, conn, s)
	case StepMessages:
		return hr.messages(ctx, conn, s)
	case StepHealth:
		return hr.health(ctx, conn, s)
	case StepClean:
		return hr.clean(ctx, conn, s)
	case StepPreflight:
		return hr.preflight(ctx, conn, s)
	}
	return fmt.Errorf("%w: unknown step", ErrInternal)
}

// upload writes an artifact, under the rollout's upload limit (uploads).
func (hr *HostResult) upload(ctx context.Context, conn Conn, s *Step, uploads chan struct{}) error {
	select {
	case uploads <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.art == nil {
		<-uploads
		return fmt.Errorf("%w: upload step without data", ErrInternal)
	}
	up, err := conn.Upload(ctx, s.art.data, s.Path, s.mode)
	<-uploads
	if err != nil {
		return err
	}
	if up.Skipped {
		hr.Unchanged++
	} else {
		hr.Uploaded++
	}
	return nil
}

// trigger runs the agent's trigger under the host lock and keeps its
// records.
func (hr *HostResult) trigger(ctx context.Context, conn Conn, s *Step) error {
	hr.AgentRan = true
	out, err := conn.Run(ctx, s.Argv, nil)
	var xe *remote.ExitError
	// Exit 1 (some ERROR) and 3 (maybe inconsistent) still print
	// the records; anything else is a failure of the agent.
	if errors.As(err, &xe) && xe.Code == LockedExit && xe.Signal == "" {
		return fmt.Errorf("%w: waited %ds for %s: %w", ErrLocked, LockWait, s.lock, err)
	}
	if errors.As(err, &xe) && xe.Signal == "" && xe.Code > 128 && xe.Code <= 128+64 {
		// flock exits 128+N when the agent under it was killed by signal N.
		n := syscall.Signal(xe.Code - 128)
		return fmt.Errorf("the agent was killed by signal %d (%v): %w", int(n), n, err)
	}
	if err != nil && !(errors.As(err, &xe) && (xe.Code == report.ExitFailure || xe.Code == report.ExitInconsistent)) {
		return err
	}
	procs, sum, perr := report.ParseTrigger(out.Stdout)
	if perr != nil {
		if err != nil {
			perr = fmt.Errorf("%w; %w", err, perr)
		}
		return perr
	}
	hr.Processes = append(hr.Processes, procs...)
	hr.Inconsistent += sum.Inconsistent
	hr.Inaccessible = max(hr.Inaccessible, sum.Inaccessible)
	if xe != nil && xe.Code == report.ExitInconsistent && sum.Inconsistent == 0 {
		hr.Inconsistent++
	}
	return nil
}

// patches runs `ulp patches --json` and keeps its records.
func (hr *HostResult) patches(ctx context.Context, conn Conn, s *Step) error {
	out, err := conn.Run(ctx, s.Argv, nil)
	if err != nil {
		return err
	}
	procs, err := report.ParsePatches(out.Stdout)
	if err != nil {
		return err
	}
	hr.Patches = procs
	return nil
}

// messages runs `ulp messages --json` and keeps its records.
func (hr *HostResult) messages(ctx context.Context, conn Conn, s *Step) error {
	// Exit 1: some process could not be read; its record says why.
	out, err := conn.Run(ctx, s.Argv, nil)
	var xe *remote.ExitError
	if err != nil && !(errors.As(err, &xe) && xe.Code == report.ExitFailure && xe.Signal == "") {
		return err
	}
	msgs, perr := report.ParseMessages(out.Stdout)
	if perr != nil {
		if err != nil {
			perr = fmt.Errorf("%w; %w", err, perr)
		}
		return perr
	}
	hr.Messages = msgs
	return nil
}

// health runs the health check; a command that ran and failed is
// ErrHealth.
func (hr *HostResult) health(ctx context.Context, conn Conn, s *Step) error {
	if _, err := conn.Run(ctx, s.Argv, nil); err != nil {
		var xe *remote.ExitError
		if errors.As(err, &xe) {
			err = fmt.Errorf("%w: %w", ErrHealth, err)
		}
		return err
	}
	return nil
}

// clean runs the staging clean-up under the host lock and keeps the
// paths it removed.
func (hr *HostResult) clean(ctx context.Context, conn Conn, s *Step) error {
	out, err := conn.Run(ctx, s.Argv, nil)
	var xe *remote.ExitError
	if errors.As(err, &xe) && xe.Code == LockedExit && xe.Signal == "" {
		return fmt.Errorf("%w: waited %ds: %w", ErrLocked, LockWait, err)
	}
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(out.Stdout)) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "/") && len(hr.Removed) < maxRemoved {
			hr.Removed = append(hr.Removed, line)
		}
	}
	return nil
}

// preflight runs the read-only preflight script and keeps its facts.
func (hr *HostResult) preflight(ctx context.Context, conn Conn, s *Step) error {
	out, err := conn.Run(ctx, s.Argv, nil)
	if err != nil {
		return err
	}
	hr.Preflight = parsePreflight(out.Stdout)
	return nil
}

// maxRemoved bounds the paths a clean step reports.
const maxRemoved = 10000

// parsePreflight reads the key=value lines of the preflight script.
func parsePreflight(out []byte) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(string(out)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && k != "" && len(m) < 64 {
			m[k] = v
		}
	}
	return m
}

// countProcesses sets the process counts from the trigger records: patched
// had at least one SUCCESS, failed at least one ERROR (a process can be
// both), skipped neither.
func (hr *HostResult) countProcesses() {
	t := report.Count(hr.Processes)
	hr.Patched, hr.Skipped, hr.Failed = t.Succeeded, t.Neither, t.Failed
}
