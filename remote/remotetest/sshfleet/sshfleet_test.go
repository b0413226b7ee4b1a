package sshfleet_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ulp/remote"
	"ulp/remote/remotetest/sshfleet"
)

// TestStart_HostsAreSeparate checks, with OpenSSH's own client, that each
// host answers on its own address, runs in its own PID namespace, has a
// private StateDir and an empty root .bashrc.
func TestStart_HostsAreSeparate(t *testing.T) {
	f := sshfleet.Start(t, 2)
	for i, h := range f.Hosts {
		if err := os.WriteFile(filepath.Join(h.Root, "whoami"), []byte(h.Name), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		out, err := h.SSHCommand(ctx,
			"cat "+sshfleet.StateDir+"/whoami; echo; echo $$; wc -c < /root/.bashrc; ls "+sshfleet.StateDir).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh %s: %v\n%s", h.Addr, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 4 || lines[0] != h.Name || lines[2] != "0" || lines[3] != "whoami" {
			t.Errorf("host %d (%s): got %q, want [%s PID 0 whoami]", i, h.Addr, lines, h.Name)
		}
		// The login shell's PID is small: it lives in the host's own PID
		// namespace, not in ours.
		if len(lines) > 1 && len(lines[1]) > 4 {
			t.Errorf("host %d: shell PID %s does not look namespaced", i, lines[1])
		}
	}
}

// TestHost_KillAndRestart checks that Kill stops the whole host and that
// Restart brings it back on the same address with the same key.
func TestHost_KillAndRestart(t *testing.T) {
	f := sshfleet.Start(t, 1)
	h := f.Hosts[0]
	pid, err := h.SSHDPID()
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := h.Command(t.Context(), "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-waited })
	h.Kill()
	if sshfleet.Alive(pid) {
		t.Errorf("sshd %d still alive after Kill", pid)
	}
	select {
	case <-waited: // the process started inside the host died with it
	case <-time.After(10 * time.Second):
		t.Error("process inside the host survived Kill")
	}
	h.Restart(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := h.SSHCommand(ctx, "true").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh after restart: %v\n%s", err, out)
	}
}

// TestStart_FleetWithRemote dials 8 hosts at once with package remote and
// checks that each is its own host: PID 1 there is its sshd, and its
// StateDir holds only its own file.
func TestStart_FleetWithRemote(t *testing.T) {
	f := sshfleet.Start(t, 8)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range f.Hosts {
		wg.Go(func() {
			c, err := remote.Dial(ctx, h.Config())
			if err != nil {
				t.Errorf("%s: %v", h.Name, err)
				return
			}
			defer c.Close()
			if _, err := c.Upload(ctx, []byte(h.Name), sshfleet.StateDir+"/name", 0o644); err != nil {
				t.Errorf("%s: %v", h.Name, err)
				return
			}
			res, err := c.Run(ctx, []string{"sh", "-c", "cat /proc/1/comm; ls " + sshfleet.StateDir + "; cat " + sshfleet.StateDir + "/name"}, nil)
			if err != nil {
				t.Errorf("%s: %v", h.Name, err)
				return
			}
			if want := "sshd\nname\n" + h.Name; string(res.Stdout) != want {
				t.Errorf("%s: got %q, want %q", h.Name, res.Stdout, want)
			}
		})
	}
	wg.Wait()
}

func TestRun_OutsideGoTest(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var order []string
	skipped, err := sshfleet.Run(t.Context(), log, "ok", func(tb testing.TB) {
		tb.Cleanup(func() { order = append(order, "first") })
		tb.Cleanup(func() { order = append(order, "second") })
		dir := tb.TempDir()
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("TempDir: %v", err)
		}
	})
	if skipped || err != nil || !slices.Equal(order, []string{"second", "first"}) {
		t.Errorf("ok: skipped %v, err %v, cleanups %v", skipped, err, order)
	}
	reached := false
	_, err = sshfleet.Run(t.Context(), log, "fatal", func(tb testing.TB) {
		tb.Fatalf("boom %d", 1)
		reached = true
	})
	if err == nil || !strings.Contains(err.Error(), "boom 1") || reached {
		t.Errorf("fatal: err %v, code after Fatal ran: %v", err, reached)
	}
	skipped, err = sshfleet.Run(t.Context(), log, "skip", func(tb testing.TB) { tb.Skip("no sshd") })
	if !skipped || err == nil || !strings.Contains(err.Error(), "no sshd") {
		t.Errorf("skip: skipped %v, err %v", skipped, err)
	}
}
