package trigger

import (
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"ulp/livepatch/active"
	"ulp/livepatch/container"
	"ulp/livepatch/elfsym"
	"ulp/livepatch/ptrace"
	"ulp/livepatch/report"
	"ulp/livepatch/sign"
	"ulp/livepatch/target"
)

// Session is one run of the agent: it owns what the triggers of the run
// share. Each container file is opened, read, checked under the trust
// policy and identified once, by the first trigger (or [Session.Container]
// or [Session.Activate]) that needs it, and every process then loads that
// one open file; [Session.Run] handles many processes by workers that each
// reuse one tracer thread. A Session is safe for concurrent use; Close it
// when the run ends.
type Session struct {
	o  Options
	mu sync.Mutex
	m  map[string]*opened // by container path
}

// opened is one container file as the session opened and checked it. Each
// stage runs once; its result is kept for every later trigger.
type opened struct {
	path string
	once sync.Once
	ck   *checked // the shared part: file, info, id, dev, inode
	c    *container.File
	err  error // opening or reading, as container.Open says it

	trustOnce sync.Once
	trustErr  error
	identOnce sync.Once
	identErr  error
	// segsOnce, segsErr: the apply spec's offsets checked against the
	// container's own segments (offsets.go), for the actions that load it.
	segsOnce sync.Once
	segsErr  error
}

// NewSession returns a session whose triggers all use o.
func NewSession(o Options) *Session {
	return &Session{o: o.withDefaults()}
}

// withDefaults returns o with its zero fields set: Timeout 30 s, a Log that
// discards.
func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Container returns the container at path, read once in the session. Its
// errors are those of container.Open.
func (s *Session) Container(path string) (*container.File, error) {
	e := s.open(path)
	return e.c, e.err
}

// Run performs reqs, in order, on every process of found, by jobs workers
// that start on the first processes while the rest are being found. Each
// worker has a tracer whose thread it reuses for the processes it handles in
// turn, and runs each trigger on that thread; a process is stopped only for
// its own writes. The records come back in the order the processes were
// found, one slice per process; the requests after one that found the
// process exited are not tried.
func (s *Session) Run(ctx context.Context, found iter.Seq[target.Found], reqs []Request, jobs int) [][]report.Process {
	type job struct {
		i int
		f target.Found
	}
	var (
		mu   sync.Mutex
		reps [][]report.Process
		wg   sync.WaitGroup
	)
	todo := make(chan job)
	for range max(jobs, 1) {
		wg.Go(func() {
			tr := ptrace.NewTracer()
			defer tr.Close()
			for j := range todo {
				var out []report.Process
				// On the tracer thread: no switch of threads per request.
				// Do fails only once tr is closed, which is below.
				tr.Do(func() { out = s.process(ctx, tr, j.f, reqs) })
				mu.Lock()
				reps[j.i] = out
				mu.Unlock()
			}
		})
	}
	for f := range found {
		mu.Lock()
		i := len(reps)
		reps = append(reps, nil)
		mu.Unlock()
		todo <- job{i, f}
	}
	close(todo)
	wg.Wait()
	return reps
}

// process runs reqs, in order, on one process, with tr.
func (s *Session) process(ctx context.Context, tr *ptrace.Tracer, f target.Found, reqs []Request) []report.Process {
	out := make([]report.Process, 0, len(reqs))
	for _, req := range reqs {
		rep := s.trigger(ctx, tr, f.PID, req)
		if rep.Comm == "" {
			rep.Comm = f.Comm // a process that could not be inspected
		}
		out = append(out, rep)
		if rep.Result == report.Skipped && rep.Reason == ReasonExited {
			break // nothing more to do in it
		}
	}
	return out
}

// Activate brings the patch-on-start folder dir to the state reqs give the
// running processes, and is meant to run before they are triggered (a
// process that starts meanwhile then has the change from its start): a
// revert removes the containers with the same patch id, revert-all and
// replace those for their library, and apply and replace install the
// containers, each first verified under the trust policy (the runtime
// checks no signature). say is told of every container activated or
// deactivated.
func (s *Session) Activate(dir string, reqs []Request, say func(what, path string)) error {
	var install []string
	for _, req := range reqs {
		var drop func(*container.File) bool
		switch req.Action {
		case report.Revert:
			c, err := s.Container(req.Container)
			if err != nil {
				return fmt.Errorf("invalid container: %w", err)
			}
			drop = func(a *container.File) bool { return a.Apply.ID == c.Apply.ID }
		case report.RevertAll, report.Replace:
			drop = func(a *container.File) bool { return a.Apply.Target.Name == req.Lib }
		}
		if req.Action.Loads() {
			if s.o.Trust != nil {
				e := s.open(req.Container)
				if e.err != nil {
					return e.err
				}
				if err := s.verify(e); err != nil {
					return fmt.Errorf("--activate: refused by trust policy %s: %s: %w", s.o.Trust.Dir, req.Container, err)
				}
			}
			install = append(install, req.Container)
		}
		if drop == nil {
			continue
		}
		gone, err := active.Remove(dir, drop)
		for _, p := range gone {
			say("deactivated", p)
		}
		if err != nil {
			return err
		}
	}
	for _, c := range install {
		e := s.open(c) // the file checked: not c opened again
		if e.err != nil {
			return e.err
		}
		p, err := active.Install(dir, c, io.NewSectionReader(e.ck.file, 0, e.ck.info.Size()))
		if err != nil {
			return err
		}
		say("activated", p)
	}
	return nil
}

// Close closes the container files, except one that the agent holds for a
// name it gave out (agentFD).
func (s *Session) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	held.Lock()
	defer held.Unlock()
	for _, e := range s.m {
		if e.ck != nil && !slices.ContainsFunc(held.fds[e.ck.id], func(f *os.File) bool { return f == e.ck.file }) {
			e.ck.file.Close()
		}
	}
	s.m = nil
}

// open returns the session's entry for the container at path, opened and
// read by the first caller.
func (s *Session) open(path string) *opened {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]*opened)
	}
	e := s.m[path]
	if e == nil {
		e = &opened{path: path}
		s.m[path] = e
	}
	s.mu.Unlock()
	e.once.Do(func() { e.ck, e.c, e.err = readContainer(path) })
	return e
}

// readContainer opens and reads the container at path. The checked file is
// returned when it was opened, also with an error, for the session to close.
func readContainer(path string) (*checked, *container.File, error) {
	// A FIFO put at the path must not hang the agent: OpenFile refuses it.
	f, fi, err := container.OpenFile(path)
	if err != nil {
		return nil, nil, err
	}
	ck := &checked{file: f, info: fi}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ck, nil, fmt.Errorf("%s: no device and inode", path)
	}
	ck.id = fileID{st.Dev, st.Ino}
	c, err := container.Read(f)
	if err != nil {
		return ck, nil, fmt.Errorf("%s: %w", path, err)
	}
	return ck, c, nil
}

// verify is the trust check of an opened container, once per session: the
// one place where the agent decides whether a container may be loaded.
func (s *Session) verify(e *opened) error {
	if s.o.Trust == nil {
		return nil
	}
	e.trustOnce.Do(func() {
		if e.trustErr = sign.CheckSafe(e.ck.info); e.trustErr != nil {
			return
		}
		var by string
		if by, e.trustErr = s.o.Trust.Verify(e.ck.file, e.ck.info.Size()); e.trustErr == nil {
			s.o.Log.Debug("container signature verified", "path", e.path, "key", by)
		}
	})
	return e.trustErr
}

// checkSegments checks the apply spec's offsets against the segments of
// the opened container file, once per session.
func (s *Session) checkSegments(e *opened) error {
	e.segsOnce.Do(func() {
		ef, err := elfsym.NewFile(e.ck.file, e.ck.info.Size(), e.ck.info.Name())
		if err == nil {
			err = e.c.Apply.CheckOffsets(nil, ef.Segments())
		}
		e.segsErr = err
	})
	return e.segsErr
}

// identify finds how /proc/PID/maps names the opened container's inode,
// once per session.
func (s *Session) identify(e *opened) error {
	e.identOnce.Do(func() { e.ck.dev, e.ck.inode, e.identErr = mapsIdentity(e.ck.file) })
	return e.identErr
}
