package trigger

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/report"
	"ulp/livepatch/sign"
	"ulp/livepatch/target"
	"ulp/livepatch/trigger/triggertest"
)

// trustTrig runs one trigger in-process under the trust policy p.
func trustTrig(t *testing.T, pid int, req Request, p *sign.Policy) report.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rep := Run(ctx, pid, req, Options{Retries: 100, Log: triggertest.Logger(t), Trust: p})
	t.Logf("%s %s: %s %s", req.Action, filepath.Base(req.Container), rep.Result, rep.Reason)
	return rep
}

// signedCopy writes src, signed with key (unsigned when key is nil), to
// dir/name with mode perm.
func signedCopy(t *testing.T, src string, key ed25519.PrivateKey, dir, name string, perm os.FileMode) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if key != nil {
		if b, err = sign.Sign(b, key); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, b, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, perm); err != nil {
		t.Fatal(err)
	}
	return dst
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// TestTrust_RefusesUnsignedAcceptsSigned: under a trust policy, trigger
// refuses an unsigned, wrongly signed, tampered or group-writable container
// with an ERROR that says so, before anything is mapped into the process,
// and applies a container signed by a trusted key.
func TestTrust_RefusesUnsignedAcceptsSigned(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	trustedPub, trusted := newKey(t)
	_, stranger := newKey(t)
	policy := sign.NewPolicy("test-policy", trustedPub)
	dir := t.TempDir()

	tampered := signedCopy(t, fx.LP["lp200"], trusted, dir, "tampered.so", 0o644)
	b, _ := os.ReadFile(tampered)
	b[0x200] ^= 0x01
	os.WriteFile(tampered, b, 0o644)

	refusals := []struct {
		name, file, want string
	}{
		{"unsigned", signedCopy(t, fx.LP["lp200"], nil, dir, "unsigned.so", 0o644), "container is not signed"},
		{"wrong key", signedCopy(t, fx.LP["lp200"], stranger, dir, "stranger.so", 0o644), "signed by an untrusted key"},
		{"tampered", tampered, "signature does not match"},
		{"group-writable", signedCopy(t, fx.LP["lp200"], trusted, dir, "writable.so", 0o664), "writable by group or others"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			rep := trustTrig(t, p.PID, apply(tt.file), policy)
			if rep.Result != report.Error || !strings.Contains(rep.Reason, "refused by trust policy") || !strings.Contains(rep.Reason, tt.want) {
				t.Errorf("%s: %s %q; want ERROR refused by trust policy ... %s", tt.name, rep.Result, rep.Reason, tt.want)
			}
			if triggertest.Mapped(t, p.PID, tt.file) {
				t.Errorf("%s was mapped into the process", tt.file)
			}
			p.Untraced(t)
			p.Expect(t, map[string]string{"value": "100"})
		})
	}

	good := signedCopy(t, fx.LP["lp200"], trusted, dir, "good.so", 0o644)
	if rep := trustTrig(t, p.PID, apply(good), policy); rep.Result != report.Success {
		t.Fatalf("signed by the trusted key: %s %q", rep.Result, rep.Reason)
	}
	p.Expect(t, map[string]string{"value": "200"})
	// An atomic replace by an unsigned container is refused before anything
	// is reverted.
	unsigned := signedCopy(t, fx.LP["lp300"], nil, dir, "unsigned300.so", 0o644)
	rep := trustTrig(t, p.PID, Request{Action: report.Replace, Container: unsigned, Lib: "libcalc.so.1"}, policy)
	if rep.Result != report.Error || !strings.Contains(rep.Reason, "container is not signed") {
		t.Errorf("replace by an unsigned container: %s %q", rep.Result, rep.Reason)
	}
	p.Expect(t, map[string]string{"value": "200"})
	// Revert needs no signature: it loads nothing.
	if rep := trustTrig(t, p.PID, revert(fx.LP["lp200"]), policy); rep.Result != report.Success {
		t.Fatalf("revert: %s %q", rep.Result, rep.Reason)
	}
	p.Expect(t, map[string]string{"value": "100"})
	p.Untraced(t)
}

// TestLoad_ContainerReplacedBetweenCheckAndLoad: once checked, the
// container the process loads is the open file the agent checked, whatever
// happens to the path before the load: replaced by another (unsigned)
// container through a rename, or deleted.
func TestLoad_ContainerReplacedBetweenCheckAndLoad(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	pub, key := newKey(t)
	policy := sign.NewPolicy("test-policy", pub)
	dir := t.TempDir()
	t.Cleanup(func() { testHookBeforeLoad = nil })

	for _, tt := range []struct {
		name   string
		swap   func(path string) error
		policy *sign.Policy
	}{
		{"renamed over, trust policy", func(path string) error {
			evil := signedCopy(t, fx.LP["lp300"], nil, dir, "evil.so", 0o644)
			return os.Rename(evil, path)
		}, policy},
		{"renamed over, no policy", func(path string) error {
			evil := signedCopy(t, fx.LP["lp300"], nil, dir, "evil.so", 0o644)
			return os.Rename(evil, path)
		}, nil},
		{"deleted", os.Remove, policy},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fix := signedCopy(t, fx.LP["lp200"], key, dir, "fix.so", 0o644)
			swapped := false
			testHookBeforeLoad = func() {
				if err := tt.swap(fix); err != nil {
					t.Errorf("swap: %v", err)
				}
				swapped = true
			}
			rep := trustTrig(t, p.PID, apply(fix), tt.policy)
			testHookBeforeLoad = nil
			if !swapped {
				t.Fatal("the hook did not run")
			}
			if rep.Result != report.Success {
				t.Fatalf("%s %q", rep.Result, rep.Reason)
			}
			// The checked bytes (200) run, not the replacement (300).
			p.Expect(t, map[string]string{"value": "200"})
			if rep := trustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: "libcalc.so.1"}, tt.policy); rep.Result != report.Success {
				t.Fatalf("revert-all: %s %q", rep.Result, rep.Reason)
			}
			p.Expect(t, map[string]string{"value": "100"})
		})
	}
	p.Untraced(t)
}

// placement is one content the renamer puts at the path and keeps there
// until released; after the release, its next rename puts the other
// content at the path and then closes swapped.
type placement struct {
	b                        []byte
	placed, release, swapped chan struct{}
	once                     sync.Once
}

func (h *placement) free() { h.once.Do(func() { close(h.release) }) }

// TestLoad_RenamerRace races a goroutine that keeps renaming an unsigned
// container over the signed one's path against triggers: every trigger
// either is refused (it opened the unsigned file) or runs the signed code.
// Left alone, which file a trigger opens is up to the scheduler (under
// load the renamer can sit on the unsigned file for a whole run, so that
// no trigger applies), so one trigger in four opens a signed file that the
// renamer then replaces by the unsigned one between the check and the
// load (it must apply the signed code), and one in four opens the
// unsigned file (it must be refused); the others race freely.
func TestLoad_RenamerRace(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	p := triggertest.Start(t, nil, fx.App)
	pub, key := newKey(t)
	policy := sign.NewPolicy("test-policy", pub)
	dir := t.TempDir()
	good, _ := os.ReadFile(signedCopy(t, fx.LP["lp200"], key, dir, "good.so", 0o644))
	evil, _ := os.ReadFile(fx.LP["lp300"])
	path := filepath.Join(dir, "fix.so")
	os.WriteFile(path, good, 0o644)

	ctx, cancel := context.WithCancel(t.Context())
	holds := make(chan *placement)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var swapped chan struct{} // closed after the next rename
		for i := 0; ctx.Err() == nil; i++ {
			b := good
			if i%2 == 1 {
				b = evil
			}
			var h *placement
			select {
			case h = <-holds:
				b = h.b
			default:
			}
			tmp := filepath.Join(dir, "next.so")
			if err := os.WriteFile(tmp, b, 0o644); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Errorf("rename: %v", err)
				return
			}
			if swapped != nil {
				close(swapped)
				swapped = nil
			}
			if h == nil {
				continue
			}
			close(h.placed)
			select {
			case <-h.release:
			case <-ctx.Done():
				return
			}
			swapped = h.swapped
			if &h.b[0] == &good[0] {
				i = 0 // next: evil
			} else {
				i = 1 // next: good
			}
		}
	}()
	defer func() { cancel(); <-done }()
	var cur atomic.Pointer[placement]
	testHookBeforeLoad = func() {
		if h := cur.Load(); h != nil {
			h.free()
			select {
			case <-h.swapped:
			case <-ctx.Done():
			}
		}
	}
	t.Cleanup(func() { testHookBeforeLoad = nil })
	applied, refused := 0, 0
	for i := range 40 {
		var h *placement
		if i%2 == 0 {
			h = &placement{b: good, placed: make(chan struct{}), release: make(chan struct{}), swapped: make(chan struct{})}
			if i%4 == 2 {
				h.b = evil
			}
			holds <- h
			<-h.placed
			cur.Store(h)
		}
		rep := trustTrig(t, p.PID, apply(path), policy)
		if h != nil {
			cur.Store(nil)
			h.free()
		}
		switch {
		case rep.Result == report.Success && (h == nil || &h.b[0] == &good[0]):
			applied++
			p.Expect(t, map[string]string{"value": "200"})
			if rep := trustTrig(t, p.PID, Request{Action: report.RevertAll, Lib: "libcalc.so.1"}, policy); rep.Result != report.Success {
				t.Fatalf("revert-all: %s %q", rep.Result, rep.Reason)
			}
		case rep.Result == report.Error && strings.Contains(rep.Reason, "container is not signed") && (h == nil || &h.b[0] == &evil[0]):
			refused++
		default:
			t.Fatalf("trigger %d: %s %q", i, rep.Result, rep.Reason)
		}
		p.Expect(t, map[string]string{"value": "100"})
	}
	t.Logf("applied %d, refused %d", applied, refused)
	if applied < 10 || refused < 10 {
		t.Errorf("applied %d, refused %d: want at least the 10 of each placed", applied, refused)
	}
	p.Untraced(t)
}

// TestTrust_PathFallbackForOtherUser: a process of another user may not
// open the agent's descriptors, so it loads the container by path; under
// a trust policy only when no folder on the way is writable by others.
func TestTrust_PathFallbackForOtherUser(t *testing.T) {
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.CC)
	fx := triggertest.Build(t)
	for d := fx.Dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rt := testenv.Artifact(t, "libpulp.so.0")
	p := triggertest.StartPlain(t, []string{"LD_PRELOAD=" + rt}, "/usr/bin/setpriv",
		"--reuid=65534", "--regid=65534", "--clear-groups", fx.App)
	pub, key := newKey(t)
	policy := sign.NewPolicy("test-policy", pub)

	open := filepath.Join(fx.Dir, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o777)
	bad := signedCopy(t, fx.LP["lp200"], key, open, "fix.so", 0o644)
	rep := trustTrig(t, p.PID, apply(bad), policy)
	if rep.Result != report.Error || !strings.Contains(rep.Reason, "folder "+open+": unsafe file: writable by group or others") {
		t.Errorf("container in a world-writable folder: %s %q", rep.Result, rep.Reason)
	}
	if triggertest.Mapped(t, p.PID, bad) {
		t.Error("container mapped")
	}
	p.Expect(t, map[string]string{"value": "100"})

	good := signedCopy(t, fx.LP["lp200"], key, fx.Dir, "fix.so", 0o644)
	if rep := trustTrig(t, p.PID, apply(good), policy); rep.Result != report.Success {
		t.Fatalf("container in a safe folder: %s %q", rep.Result, rep.Reason)
	}
	p.Expect(t, map[string]string{"value": "200"})
	if !strings.Contains(messagesOf(t, p.PID), "load "+good) {
		t.Errorf("the process did not load the container by path")
	}
	p.Untraced(t)
}

// messagesOf returns the runtime's message ring of process pid.
func messagesOf(t *testing.T, pid int) string {
	t.Helper()
	tp, err := target.Open(pid)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := tp.ReadRing(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
