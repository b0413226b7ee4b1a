package trigger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"ulp/internal/escape"
	"ulp/livepatch/abi"
	"ulp/livepatch/container"
	"ulp/livepatch/insn"
	"ulp/livepatch/ledger"
	"ulp/livepatch/procfs"
	"ulp/livepatch/ptrace"
	"ulp/livepatch/report"
	"ulp/livepatch/sign"
	"ulp/livepatch/target"
)

// Request is one trigger on one process.
type Request struct {
	Action report.Action
	// Container is the livepatch container (apply, revert, replace).
	Container string
	// Lib is the target basename whose patches are reverted (revert-all,
	// replace).
	Lib string
}

// Options tune a trigger.
type Options struct {
	// Retries is how many more times the container load is attempted when
	// every thread of the process was busy in malloc or the dynamic loader,
	// or none could take the call. A process held by another tracer (another
	// agent) is waited for until Timeout.
	Retries int
	// Timeout bounds the whole trigger of one process; 0 means 30 s.
	Timeout time.Duration
	// Log receives debug logs; nil discards them.
	Log *slog.Logger
	// CheckStack makes the code write wait, retrying until Timeout, while
	// any thread executes a function being replaced or has a return
	// address into one on its stack (checkstack.go).
	CheckStack bool
	// Trust, when set, is the trust policy: apply and replace load only a
	// container signed by one of its keys, owned by root or the agent's
	// user and not writable by group or others (openContainer).
	Trust *sign.Policy
	// RootPrefix, when set, is where the process sees the agent's root
	// (ulp trigger -R, as libpulp's: a snapshot mounted under a folder):
	// a process that cannot open the agent's descriptor of the container
	// opens RootPrefix + the container's path, which must name the checked
	// file.
	RootPrefix string
	// AllowSeccomp loads containers into processes that have a seccomp
	// filter (Seccomp: 2), which are otherwise SKIPPED: a filter that
	// forbids mmap with PROT_EXEC (or another system call of dlopen)
	// kills the process during the load.
	AllowSeccomp bool
}

// Reasons printed after SKIPPED.
const (
	ReasonNotLoaded  = "target library not loaded"
	ReasonBuildID    = "build-id mismatch"
	ReasonApplied    = "already applied"
	ReasonNotApplied = "not applied"
	ReasonBlocked    = "blocked by user"
	ReasonExited     = "process exited"
	ReasonNoPatches  = "no patches on"
	ReasonSeccomp    = "seccomp"
)

// outcome is a SKIPPED or ERROR decision with its reason and its cause.
type outcome struct {
	result       report.Result
	reason       string
	inconsistent bool
	err          error
}

func (o *outcome) Error() string { return string(o.result) + " " + o.reason }
func (o *outcome) Unwrap() error { return o.err }

func skipped(format string, args ...any) *outcome {
	err := fmt.Errorf(format, args...)
	return &outcome{result: report.Skipped, reason: err.Error(), err: err}
}

func failed(format string, args ...any) *outcome {
	err := fmt.Errorf(format, args...)
	return &outcome{result: report.Error, reason: err.Error(), err: err}
}

// Run performs req on process pid, in a session of its own, and reports
// the outcome. It never returns an error: every failure is a report.Process
// with Result ERROR or SKIPPED and a reason, and Inconsistent set when code
// may have been left half written. A run over many processes uses
// [Session.Run].
func Run(ctx context.Context, pid int, req Request, o Options) report.Process {
	s := NewSession(o)
	defer s.Close()
	return s.trigger(ctx, nil, pid, req)
}

// trigger performs req on process pid: [Run] within s. The process is
// seized with tr, a worker's tracer whose thread is reused for the processes
// it handles in turn and on which trigger runs; nil seizes with a tracer of
// the trigger's own.
func (s *Session) trigger(ctx context.Context, tr *ptrace.Tracer, pid int, req Request) report.Process {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	r := &run{pid: pid, req: req, s: s, o: s.o, tr: tr, log: s.o.Log.With("pid", pid, "action", string(req.Action))}
	r.rep = report.Process{
		Schema: report.TriggerSchema,
		Type:   report.TypeProcess,
		PID:    pid,
		Patch:  req.Container,
		Action: req.Action,
	}
	if req.Container != "" {
		if abs, err := filepath.Abs(req.Container); err == nil {
			r.rep.Patch = abs
		}
	}
	err := r.do(ctx)
	if r.proc != nil {
		// After a write, the threads are still stopped: detaching them
		// resumes them and ends the stop window.
		td := time.Now()
		if e := r.proc.Detach(); e != nil && err == nil {
			err = failed("detach: %w", e)
		}
		r.rep.Timings.DetachUS += time.Since(td).Microseconds()
		r.rep.Timings.PauseUS = max(r.rep.Timings.PauseUS, r.proc.LastPause().Microseconds())
	}
	if err != nil && exited(pid, err) {
		err = r.exitOutcome()
	}
	switch oc := (*outcome)(nil); {
	case err == nil:
		r.rep.Result = report.Success
	case errors.As(err, &oc):
		r.rep.Result, r.rep.Reason, r.rep.Inconsistent = oc.result, oc.reason, oc.inconsistent
	default:
		r.rep.Result, r.rep.Reason = report.Error, err.Error()
	}
	r.rep.Timings.TotalUS = time.Since(t0).Microseconds()
	r.log.Debug("trigger done", "result", r.rep.Result, "reason", r.rep.Reason, "timings", r.rep.Timings)
	return r.rep
}

// exitOutcome reports a process that is gone: SKIPPED when it exited on
// its own or was killed from outside (SIGKILL, SIGTERM: nothing of the
// trigger's doing), ERROR when a thread died of a signal the trigger could
// have caused while the agent held it (SIGSYS of a seccomp filter during
// the load, a fault signal of code just mapped or written).
func (r *run) exitOutcome() error {
	if r.proc != nil {
		switch sig := r.proc.KilledBy(); sig {
		case syscall.SIGSYS, syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGILL, syscall.SIGFPE, syscall.SIGTRAP, syscall.SIGABRT:
			return failed("process killed by signal %s during the trigger", unix.SignalName(sig))
		}
	}
	return skipped(ReasonExited)
}

// exited reports whether process pid exited during the trigger that failed
// with err: whatever failed, the trigger is then SKIPPED "process exited".
// An error saying the process is gone gives it a moment to finish dying.
func exited(pid int, err error) bool {
	if procfs.Gone(pid) {
		return true
	}
	if !errors.Is(err, syscall.ESRCH) && !errors.Is(err, ptrace.ErrExited) && !errors.Is(err, procfs.ErrNoProcess) {
		return false
	}
	for range 100 {
		time.Sleep(time.Millisecond)
		if procfs.Gone(pid) {
			return true
		}
	}
	return false
}

// goneSoon reports whether process pid is gone within 100 ms: a process
// that exits has, for a moment, a zombie main thread while its other
// threads die, which is not a main thread that called pthread_exit.
func goneSoon(pid int) bool {
	for range 100 {
		if procfs.Gone(pid) {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// run is the state of one trigger.
type run struct {
	pid  int
	req  Request
	s    *Session
	o    Options        // s.o
	tr   *ptrace.Tracer // the worker's tracer, or nil
	log  *slog.Logger
	rep  report.Process
	tp   *target.Process
	rt   runtimeInfo
	proc *ptrace.Process

	spec *container.Spec // apply: the new patch (apply, replace); revert: the patch
	obj  *target.Object  // the target object of spec

	ck     *checked       // the container's open, checked file (its session's)
	st     *procfs.Status // /proc/PID/status, read once (status)
	ranges []codeRange    // CheckStack: the functions being replaced
	// offsetsChecked: the container's offsets were checked against the
	// target (checkOffsets; once, before the seize).
	offsetsChecked bool
	maps           []procfs.Mapping // the memory map, to find stacks (entry.go)
}

func (r *run) do(ctx context.Context) error {
	// Preflight: nothing is stopped or written.
	if err := r.readContainer(); err != nil {
		return err
	}
	if err := r.openTarget(); err != nil {
		return err
	}
	l, err := r.tp.ReadLedger(ctx)
	if err != nil {
		return failed("read ledger: %w", err)
	}
	if err := r.check(l); err != nil {
		return err
	}
	// Take the process: the seize is the lock against a second agent.
	ta := time.Now()
	if err := r.seize(ctx); err != nil {
		return err
	}
	r.rep.Timings.AttachUS = time.Since(ta).Microseconds()
	// Under the lock, the ledger is ours: read it again.
	if l, err = r.tp.ReadLedger(ctx); err != nil {
		return failed("read ledger: %w", err)
	}
	if err := r.check(l); err != nil {
		return err
	}
	var patch ledger.Patch
	var tramps []ledger.Write // tramp.go
	if r.req.Action == report.Apply || r.req.Action == report.Replace {
		tl := time.Now()
		if patch, err = r.load(ctx); err != nil {
			return err
		}
		r.rep.Timings.LoadUS = time.Since(tl).Microseconds()
		if patch, tramps, err = r.trampolines(l, patch); err != nil {
			return err
		}
	}
	mem := procfs.Mem{PID: r.pid}
	var plan *ledger.Plan
	switch r.req.Action {
	case report.Apply:
		plan, err = ledger.Apply(l, patch, mem)
	case report.Revert:
		plan, err = ledger.Revert(l, r.spec.ID, mem)
	case report.RevertAll:
		plan, err = ledger.RevertAll(l, r.req.Lib, mem)
	case report.Replace:
		plan, err = ledger.Replace(l, r.req.Lib, patch, mem)
	}
	if err != nil {
		return planError(err)
	}
	plan.Writes = append(tramps, plan.Writes...)
	enc, err := ledger.Encode(plan.Ledger)
	if err != nil {
		return failed("encode ledger: %w", err)
	}
	if len(enc) > target.MaxLedger {
		return failed("the ledger would take %d bytes, more than the %d the agent reads back", len(enc), target.MaxLedger)
	}
	if err := r.ensureLedgerCap(ctx, uint64(len(enc))); err != nil {
		return err
	}
	commit, err := r.tp.LedgerWriter(context.Background(), r.proc, enc)
	if err != nil {
		return failed("read ledger: %w", err)
	}
	if err := r.writeCode(ctx, plan, commit); err != nil {
		return err
	}
	r.message(plan)
	return nil
}

// readContainer reads the container of apply, revert and replace.
func (r *run) readContainer() error {
	if r.req.Container == "" {
		return nil
	}
	c, err := r.openContainer()
	if err != nil {
		return err
	}
	r.spec = c.Apply
	if r.req.Action == report.Revert {
		r.spec = c.Revert
	}
	r.rep.PatchID = r.spec.ID.String()
	if r.req.Action == report.Replace && r.spec.Target.Name != r.req.Lib {
		return failed("container patches %s, not %s", r.spec.Target.Name, r.req.Lib)
	}
	return nil
}

// openTarget finds the runtime and its block, and checks its state.
func (r *run) openTarget() error {
	tp, err := openStable(r.pid)
	switch {
	case err != nil && procfs.LeaderExited(r.pid) && !goneSoon(r.pid):
		return failed("the main thread of process %d has exited (pthread_exit): ulp cannot read or patch such a process", r.pid)
	case errors.Is(err, procfs.ErrNoProcess):
		return skipped(ReasonExited)
	case errors.Is(err, target.ErrSUSERuntime):
		return failed("%w", err)
	case errors.Is(err, target.ErrNoRuntime):
		return failed("%s is not loaded in process %d: start it with LD_PRELOAD=/path/to/%s",
			target.RuntimeName, r.pid, target.RuntimeName)
	case errors.Is(err, fs.ErrPermission):
		return failed("no permission to inspect process %d: %w (%s)", r.pid, err, procfs.PtraceAdvice(r.pid, false))
	case err != nil:
		return failed("inspect process: %w", err)
	}
	r.tp = tp
	r.rep.Comm = tp.Comm
	blk, err := tp.ReadABI()
	if err != nil {
		return failed("read runtime block: %w", err)
	}
	switch blk.State {
	case abi.StateReady:
	case abi.StateUserOff, abi.StateRuntimeOff:
		return skipped("%s (%s)", ReasonBlocked, abi.String(blk.Reason[:]))
	default:
		return failed("runtime disabled: %s", abi.String(blk.Reason[:]))
	}
	r.rt = runtimeInfo{ABI: tp.ABI, Entry: blk.Entry, TextStart: tp.Runtime.Start, TextEnd: tp.Runtime.End, Maps: tp.Maps()}
	return nil
}

// openStable is target.Open, tried again a few times when it fails on the
// process's memory: a library unmapped by dlclose between the read of the
// memory map and the read of its ELF header is not an error of the process.
func openStable(pid int) (*target.Process, error) {
	for attempt := 0; ; attempt++ {
		tp, err := target.Open(pid)
		if err == nil || attempt == 4 || errors.Is(err, procfs.ErrNoProcess) ||
			errors.Is(err, target.ErrNoRuntime) || errors.Is(err, fs.ErrPermission) {
			return tp, err
		}
	}
}

// check decides SKIPPED cases from the ledger and the loaded objects.
func (r *run) check(l *ledger.Ledger) error {
	switch r.req.Action {
	case report.Revert:
		if l.Patch(r.spec.ID) == nil {
			return skipped(ReasonNotApplied)
		}
		return nil
	case report.RevertAll:
		if r.tp.Object(r.req.Lib) == nil {
			return skipped(ReasonNotLoaded)
		}
		if !hasPatchOn(l, r.req.Lib) {
			return skipped("%s %s", ReasonNoPatches, r.req.Lib)
		}
		return nil
	}
	// apply, replace: the new patch's target must be loaded with the same
	// build-id.
	r.obj = r.tp.Object(r.spec.Target.Name)
	if r.obj == nil {
		return skipped(ReasonNotLoaded)
	}
	if !bytes.Equal(r.obj.BuildID, r.spec.Target.BuildID) {
		return skipped("%s (library %x, patch %x)", ReasonBuildID, r.obj.BuildID, r.spec.Target.BuildID)
	}
	if r.req.Action == report.Apply && l.Patch(r.spec.ID) != nil {
		return skipped(ReasonApplied)
	}
	if r.spec.Libpulp {
		if err := r.libpulpEntries(); err != nil {
			return err
		}
	}
	if err := r.checkSeccomp(); err != nil {
		return err
	}
	if !r.offsetsChecked {
		if err := r.checkOffsets(); err != nil {
			return err
		}
		r.offsetsChecked = true
	}
	// Check that every function can be patched before anything is mapped:
	// plan against the current code with placeholder replacements (the
	// target's bias as the container's: within reach of an entry jump).
	probe := r.ledgerPatch(r.obj.Bias, r.obj.Bias)
	var plan *ledger.Plan
	var err error
	if r.req.Action == report.Replace {
		plan, err = ledger.Replace(l, r.req.Lib, probe, procfs.Mem{PID: r.pid})
	} else {
		plan, err = ledger.Apply(l, probe, procfs.Mem{PID: r.pid})
	}
	if err != nil {
		return planError(err)
	}
	if err := checkOverlaps(plan.Ledger); err != nil {
		return err
	}
	return r.checkMechanisms(plan)
}

// libpulpEntries decides, for a container in SUSE libpulp's format, where
// the pad's NOPs of each function are: at the entry, or after an endbr64,
// as libpulp's runtime tells from the bytes. The spec is shared by the
// processes of a run, so the run works on a copy.
func (r *run) libpulpEntries() error {
	spec := *r.spec
	spec.Funcs = slices.Clone(spec.Funcs)
	for i := range spec.Funcs {
		f := &spec.Funcs[i]
		b := make([]byte, insn.EndbrLen)
		if err := procfs.ReadMem(r.pid, r.obj.Bias+f.OldOffset, b); err != nil {
			return failed("read the entry of %s: %w", f.Old, err)
		}
		f.EntryOffset = insn.Endbr(b)
	}
	r.spec = &spec
	return nil
}

// checkSeccomp refuses a load into a process whose seccomp mode may kill
// it for a system call of dlopen: strict mode always, a filter unless
// Options.AllowSeccomp (the agent cannot tell what a filter allows).
func (r *run) checkSeccomp() error {
	st, err := procfs.ReadStatus(r.pid)
	if err != nil {
		return failed("read status: %w", err)
	}
	switch {
	case st.Seccomp == 1:
		return skipped("%s: the process is in seccomp strict mode (Seccomp: 1): loading a container would kill it", ReasonSeccomp)
	case st.Seccomp == 2 && !r.o.AllowSeccomp:
		return skipped("%s: the process has a seccomp filter (Seccomp: 2) that may kill it for a system call of the load (mmap with PROT_EXEC); --allow-seccomp if the filter allows them", ReasonSeccomp)
	}
	return nil
}

func hasPatchOn(l *ledger.Ledger, lib string) bool {
	for _, p := range l.Patches {
		if p.Target == lib {
			return true
		}
	}
	return false
}

// planError maps a ledger planning error to an outcome.
func planError(err error) error {
	switch {
	case errors.Is(err, ledger.ErrAlreadyApplied):
		return skipped(ReasonApplied)
	case errors.Is(err, ledger.ErrNotApplied):
		return skipped(ReasonNotApplied)
	}
	var mm *ledger.MismatchError
	if errors.As(err, &mm) {
		return &outcome{result: report.Error, reason: err.Error(), inconsistent: true, err: err}
	}
	return failed("%w", err)
}

// ledgerPatch returns the ledger record of the new patch for a container
// loaded at bias cbias (the target's bias: a placeholder for planning
// before the load).
func (r *run) ledgerPatch(tbias, cbias uint64) ledger.Patch {
	p := ledger.Patch{
		ID:        r.spec.ID,
		Container: r.rep.Patch,
		Target:    r.spec.Target.Name,
		BuildID:   r.spec.Target.BuildID,
		AppliedAt: time.Now().UTC(),
		Labels:    r.spec.Labels,
	}
	for _, f := range r.spec.Funcs {
		p.Redirects = append(p.Redirects, ledger.Redirect{Old: tbias + f.OldOffset, New: cbias + f.NewOffset})
	}
	return p
}

// seize attaches to the process, retrying while another tracer holds it.
func (r *run) seize(ctx context.Context) error {
	backoff := time.Millisecond
	for {
		var p *ptrace.Process
		var err error
		// The main thread only: the lock. A call seizes the thread it
		// borrows, a write that needs every thread stopped seizes them all.
		if r.tr != nil {
			p, err = r.tr.Lock(ctx, r.pid, r.log)
		} else {
			p, err = ptrace.Lock(ctx, r.pid, r.log)
		}
		if err == nil {
			r.proc = p
			return nil
		}
		switch {
		case errors.Is(err, ptrace.ErrExited):
			return skipped(ReasonExited)
		case errors.Is(err, ptrace.ErrBusy) && ctx.Err() == nil:
			r.log.Debug("process busy, retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 50*time.Millisecond)
			continue
		}
		if ctx.Err() != nil {
			return failed("timeout: %w%s", err, tracedBy(r.pid))
		}
		return failed("%w", err)
	}
}

// load makes the process dlopen the container and fills in its references.
// It returns the ledger record of the new patch with real addresses.
func (r *run) load(ctx context.Context) (ledger.Patch, error) {
	path, err := r.containerPath()
	if err != nil {
		return ledger.Patch{}, err
	}
	var c *abi.Call
	for i := 1; ; i++ {
		if c, path, err = r.dlopen(ctx, path); err != nil {
			return ledger.Patch{}, err
		}
		err = r.checkLoaded(c.Out[1])
		if err == nil {
			break
		}
		if path != r.ck.viaFD || i == maxNames {
			return ledger.Patch{}, err
		}
		// Another agent process with this PID had the process load
		// another file under this name: the next name is new to it.
		r.log.Debug("name taken in the process, trying the next", "path", path, "err", err)
		path = r.viaAgentFD(i)
	}
	cbias, tbias, modid := c.Out[1], c.Out[2], c.Out[3]
	if tbias != r.obj.Bias {
		return ledger.Patch{}, failed("target %s loaded at %#x, expected %#x", r.spec.Target.Name, tbias, r.obj.Bias)
	}
	r.log.Debug("loaded", "container_bias", cbias, "target_bias", tbias, "tls_module", modid)
	for _, ref := range r.spec.Refs {
		addr := cbias + ref.PatchOffset
		var b []byte
		if ref.TLS {
			if modid == 0 {
				return ledger.Patch{}, failed("reference %s: %s has no TLS", ref.PatchRef, r.spec.Target.Name)
			}
			// struct tls_index {ti_module, ti_offset}; TLS_DTV_OFFSET is 0 on x86_64.
			b = binary.LittleEndian.AppendUint64(b, modid)
			b = binary.LittleEndian.AppendUint64(b, ref.TargetOffset)
		} else {
			b = binary.LittleEndian.AppendUint64(b, tbias+ref.TargetOffset)
		}
		// Through /proc/PID/mem: the variable may sit in RELRO memory that
		// the loader made read-only. Nothing reads it before the patch is
		// live.
		if err := r.proc.Write(addr, b); err != nil {
			return ledger.Patch{}, failed("reference %s: %w", ref.PatchRef, err)
		}
	}
	return r.ledgerPatch(tbias, cbias), nil
}

// dlopen makes the process dlopen the container at path, retrying while
// every thread is busy, and by path when the process may not open the
// agent's descriptor after all. It returns the call and the path loaded.
func (r *run) dlopen(ctx context.Context, path string) (*abi.Call, string, error) {
	req := abi.NewRequest(0, abi.OpLoad)
	if err := req.SetPath(path); err != nil {
		return nil, "", failed("container path: %w", err)
	}
	name := r.spec.Target.Name
	if r.obj.Main {
		name = ""
	}
	if err := req.SetTarget(name); err != nil {
		return nil, "", failed("target name: %w", err)
	}
	if testHookBeforeLoad != nil {
		testHookBeforeLoad()
	}
	var c *abi.Call
	var err error
	backoff := time.Millisecond
	for attempt := 0; ; attempt++ {
		c, err = call(ctx, r.proc, r.rt, req)
		if alt, ok, aerr := r.fdRefused(path, err); ok {
			if aerr != nil {
				return nil, "", aerr
			}
			path = alt
			if err := req.SetPath(path); err != nil {
				return nil, "", failed("container path: %w", err)
			}
			continue
		}
		var ce *callError
		busy := errors.As(err, &ce) && ce.Result == abi.EAgain || errors.Is(err, errNoThread)
		if busy && attempt < r.o.Retries && ctx.Err() == nil {
			r.log.Debug("load: every thread busy, retrying", "attempt", attempt+1)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 20*time.Millisecond)
			continue
		}
		break
	}
	var ce *callError
	switch {
	case errors.As(err, &ce):
		switch ce.Result {
		case abi.EDisabled:
			return nil, "", skipped("%s (%s)", ReasonBlocked, ce.Msg)
		case abi.ENoTarget:
			return nil, "", skipped(ReasonNotLoaded)
		case abi.EAgain:
			return nil, "", failed("load: every thread stayed busy in malloc or the dynamic loader (try --retries)")
		}
		return nil, "", failed("load: %w", err)
	case errors.Is(err, ptrace.ErrExited):
		return nil, "", skipped(ReasonExited)
	case err != nil:
		return nil, "", failed("load: %w", err)
	}
	return c, path, nil
}

// ensureLedgerCap grows the runtime's ledger area when n bytes do not fit.
func (r *run) ensureLedgerCap(ctx context.Context, n uint64) error {
	_, area, err := r.tp.ReadLedgerBytes(ctx)
	if err != nil {
		return failed("read ledger: %w", err)
	}
	if n <= area.Cap {
		return nil
	}
	req := abi.NewRequest(0, abi.OpGrowLedger)
	req.Arg[0] = max(n, 2*area.Cap)
	if _, err := call(ctx, r.proc, r.rt, req); err != nil {
		return failed("grow ledger: %w", err)
	}
	return nil
}

// maxSplitRetries bounds the stop windows retried because a thread was
// stopped in the middle of bytes to be written.
const maxSplitRetries = 50

// writeCode makes the plan's writes without stopping any thread when it
// can (writeLive). Else it stops every thread, checks that none sits inside
// the bytes to be written, writes them in plan order, then the ledger
// (commit). Writing
// the ledger inside the stop window keeps the time in which an agent killed
// would leave code and ledger disagreeing to a few system calls. On success
// the threads stay stopped: Run's Detach resumes them (resuming them here
// would make it stop each again to detach it); on failure they are resumed.
func (r *run) writeCode(ctx context.Context, plan *ledger.Plan, commit func() error) error {
	if len(plan.Writes) == 0 {
		if err := commit(); err != nil {
			return &outcome{result: report.Error, reason: "write ledger: " + err.Error(), inconsistent: true, err: err}
		}
		return nil
	}
	if handled, err := r.writeLive(ctx, plan, commit); handled {
		return err
	}
	for attempt := 0; ; attempt++ {
		tw := time.Now()
		if err := r.proc.StopAll(ctx); err != nil {
			r.proc.ResumeAll()
			if errors.Is(err, ptrace.ErrExited) {
				return skipped(ReasonExited)
			}
			return failed("stop threads: %w", err)
		}
		split, err := r.splitting(plan)
		if err != nil {
			r.proc.ResumeAll()
			return failed("%w", err)
		}
		if split != 0 {
			r.proc.ResumeAll()
			r.rep.Timings.PauseUS = max(r.rep.Timings.PauseUS, r.proc.LastPause().Microseconds())
			if attempt >= maxSplitRetries || ctx.Err() != nil {
				return failed("thread %d stays inside the code to be patched", split)
			}
			time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond)
			continue
		}
		if retry, err := r.checkStack(ctx, plan); err != nil || retry {
			r.proc.ResumeAll()
			if err != nil {
				return err
			}
			attempt = -1 // the split retries count from the last stack wait
			time.Sleep(time.Millisecond)
			continue
		}
		for i, w := range plan.Writes {
			if err := r.proc.Write(w.Addr, w.Data); err != nil {
				r.proc.ResumeAll()
				// Writes are ordered so that any prefix leaves old or new
				// code, but the ledger no longer matches.
				return &outcome{result: report.Error, reason: fmt.Sprintf("write code: %v", err), inconsistent: i > 0, err: err}
			}
		}
		if err := commit(); err != nil {
			r.proc.ResumeAll()
			return &outcome{result: report.Error, reason: "write ledger: " + err.Error(), inconsistent: true, err: err}
		}
		r.rep.Timings.WriteUS = time.Since(tw).Microseconds()
		return nil
	}
}

// splitting returns a thread stopped inside the bytes to be written, or 0.
func (r *run) splitting(plan *ledger.Plan) (int, error) {
	all, err := r.proc.AllRegs()
	if err != nil {
		return 0, err
	}
	for _, th := range all {
		if r.unsafeStop(plan, th.Regs) {
			return th.TID, nil
		}
	}
	return 0, nil
}

// message appends one line about the change to the runtime's ring.
func (r *run) message(plan *ledger.Plan) {
	var line string
	switch r.req.Action {
	case report.Apply:
		line = fmt.Sprintf("ulp: applied %s (%s) to %s: %d function(s)", r.rep.PatchID[:16], r.rep.Patch, r.spec.Target.Name, len(r.spec.Funcs))
	case report.Revert:
		line = fmt.Sprintf("ulp: reverted %s (%s)", r.rep.PatchID[:16], r.rep.Patch)
	case report.RevertAll:
		line = fmt.Sprintf("ulp: reverted every patch on %s", r.req.Lib)
	case report.Replace:
		line = fmt.Sprintf("ulp: replaced the patches on %s by %s (%s)", r.req.Lib, r.rep.PatchID[:16], r.rep.Patch)
	}
	// A ring line is one line: the container's path may hold a newline.
	if err := r.tp.AppendRing(r.proc, escape.Text(line)); err != nil {
		r.log.Warn("message ring", "err", err)
	}
}
