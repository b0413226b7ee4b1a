package sshfleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"ulp/internal/testenv"
	"ulp/livepatch/procfs"
	"ulp/remote"
	"ulp/remote/remotetest"
)

// StateDir is where each host sees its private folder (Host.Root).
const StateDir = "/var/lib/ulp"

// startTimeout bounds the wait for sshd's "Server listening" line.
const startTimeout = 15 * time.Second

// Fleet is a set of hosts sharing one client key and one known_hosts file.
type Fleet struct {
	Hosts []*Host
	// KnownHosts lists every host's key, as "127.0.1.N" lines.
	KnownHosts string
	// Identity is the client's private key file, authorized on every host
	// for root and for every other user of this machine.
	Identity string
}

// Host is one sshd in its own namespaces.
type Host struct {
	// Name is "hostNN", 1-based in start order.
	Name string
	// Addr is the host's loopback address, "127.0.1.N"; sshd listens on
	// port 22 there.
	Addr string
	Port int
	// KnownHosts and Identity are the fleet's (see [Fleet]).
	KnownHosts string
	Identity   string
	// Root is the test-side folder mounted at [StateDir] in the host.
	Root string
	// Dir holds the host's sshd_config, keys and authorized_keys.
	Dir string
	// HostCert is the host certificate file sshd presents besides its
	// key ([Host.SignHostKey]); empty for none.
	HostCert string

	t      testing.TB
	lock   *os.File
	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
}

// Start starts n hosts and returns them once every sshd listens. It fails
// t when a host cannot start. Everything is stopped in t.Cleanup.
func Start(t testing.TB, n int) *Fleet {
	t.Helper()
	testenv.Require(t, testenv.Root, testenv.SSHD)
	for _, tool := range []string{"unshare", "nsenter", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("sshfleet: %s not found (util-linux): %v", tool, err)
		}
	}
	for _, d := range []string{"/run/sshd", StateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("sshfleet: %v", err)
		}
	}
	dir := t.TempDir()
	f := &Fleet{KnownHosts: filepath.Join(dir, "known_hosts")}
	client, ident := remotetest.WriteKey(t, dir, "id_ed25519")
	f.Identity = ident
	authorized := ssh.MarshalAuthorizedKey(client.PublicKey())
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	var known bytes.Buffer
	for i := range n {
		h := &Host{
			Name:       fmt.Sprintf("host%02d", i+1),
			Port:       22,
			KnownHosts: f.KnownHosts,
			Identity:   ident,
			Root:       filepath.Join(dir, fmt.Sprintf("host%02d", i+1), "root"),
			Dir:        filepath.Join(dir, fmt.Sprintf("host%02d", i+1)),
			t:          t,
		}
		if err := os.MkdirAll(h.Root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.Dir, "authorized_keys"), authorized, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.Dir, "empty"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		h.claimAddr(t)
		hk := h.newHostKey(t)
		known.WriteString(knownhosts.Line([]string{h.Addr}, hk.PublicKey()) + "\n")
		h.writeConfig(t)
		f.Hosts = append(f.Hosts, h)
	}
	if err := os.WriteFile(f.KnownHosts, known.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	// Register the kills before starting, so a failed start cleans up too.
	t.Cleanup(func() {
		for _, h := range f.Hosts {
			h.Kill()
			if t.Failed() {
				t.Logf("sshfleet: %s (%s) sshd log:\n%s", h.Name, h.Addr, h.Log())
			}
		}
	})
	for _, h := range f.Hosts {
		if err := h.start(); err != nil {
			t.Fatalf("sshfleet: %v", err)
		}
	}
	return f
}

// HostPort returns "127.0.1.N:22".
func (h *Host) HostPort() string { return net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)) }

// Config returns a strict remote.Config for root on h.
func (h *Host) Config() remote.Config {
	return remote.Config{
		Addr:       h.HostPort(),
		User:       "root",
		KnownHosts: []string{h.KnownHosts},
		Identities: []string{h.Identity},
	}
}

// SSHCommand returns OpenSSH's own client, ssh(1), set up to run command on
// h as root with the fleet's identity and strict known_hosts, ignoring the
// user's ~/.ssh/config: the baseline to compare remote.Client with.
func (h *Host) SSHCommand(ctx context.Context, command string) *exec.Cmd {
	return exec.CommandContext(ctx, "ssh", "-F", "none",
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+h.KnownHosts, "-o", "ControlMaster=no",
		"-i", h.Identity, "-p", strconv.Itoa(h.Port), "root@"+h.Addr, command)
}

// Log returns what sshd wrote to its standard error so far.
func (h *Host) Log() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stderr == nil {
		return ""
	}
	return h.stderr.String()
}

// Kill kills the host: sshd, its sessions and every process inside the
// host's PID namespace, and returns once they are gone. It is a no-op on a
// stopped host.
func (h *Host) Kill() {
	init, _ := h.initPID()
	h.mu.Lock()
	cmd, exited := h.cmd, h.exited
	h.cmd = nil
	h.mu.Unlock()
	if cmd == nil {
		return
	}
	// Killing the namespace's init makes the kernel kill everything in the
	// namespace; unshare (run with --kill-child) follows.
	if init > 0 {
		_ = syscall.Kill(init, syscall.SIGKILL)
	}
	_ = cmd.Process.Kill()
	<-exited
	for deadline := time.Now().Add(10 * time.Second); init > 0 && alive(init) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie (a killed process
// reparented to an init that does not reap it stays a zombie). A
// namespace's init turns zombie only once the kernel has killed every
// other process of its namespace, which Kill waits for.
func alive(pid int) bool {
	st, err := procfs.ReadStatus(pid)
	return err == nil && !st.Dead()
}

// Restart starts a killed host again with the same keys and address.
func (h *Host) Restart(t testing.TB) {
	t.Helper()
	h.Kill()
	if err := h.start(); err != nil {
		t.Fatalf("sshfleet: %v", err)
	}
}

// RegenerateHostKey gives h a new host key and restarts it; the fleet's
// known_hosts now holds a stale key for h.
func (h *Host) RegenerateHostKey(t testing.TB) {
	t.Helper()
	h.Kill()
	h.newHostKey(t)
	h.Restart(t)
}

// SignHostKey makes ca sign h's host key (a host certificate valid for
// principals, forever), has sshd present the certificate, and restarts h.
func (h *Host) SignHostKey(t testing.TB, ca ssh.Signer, principals ...string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Dir, "host_ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: pub, CertType: ssh.HostCert, KeyId: h.Name, ValidPrincipals: principals,
		ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	h.HostCert = filepath.Join(h.Dir, "host_ed25519-cert.pub")
	if err := os.WriteFile(h.HostCert, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
	h.writeConfig(t)
	h.Restart(t)
}

// Command returns a command that runs inside h's mount and PID namespaces
// (through nsenter), e.g. to start a process "on" the host. The caller
// starts, waits for and kills it; killing the host kills it too.
func (h *Host) Command(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	pid, err := h.initPID()
	if err != nil {
		return nil, err
	}
	argv := append([]string{"-t", strconv.Itoa(pid), "-m", "-p", "--", name}, args...)
	return exec.CommandContext(ctx, "nsenter", argv...), nil
}

// SSHDPID returns the PID (in this machine's namespace) of the host's
// listening sshd, the init of its PID namespace.
func (h *Host) SSHDPID() (int, error) { return h.initPID() }

func (h *Host) initPID() (int, error) {
	h.mu.Lock()
	cmd := h.cmd
	h.mu.Unlock()
	if cmd == nil {
		return 0, fmt.Errorf("%s is not running", h.Name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("%s: find sshd: %w", h.Name, err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		return 0, fmt.Errorf("%s: unshare has children %q", h.Name, b)
	}
	return strconv.Atoi(f[0])
}

var sshdConfig = template.Must(template.New("sshd_config").Parse(`# generated by sshfleet for {{.Name}}
ListenAddress {{.Addr}}:{{.Port}}
HostKey {{.Dir}}/host_ed25519
{{if .HostCert}}HostCertificate {{.HostCert}}
{{end -}}
AuthorizedKeysFile {{.Dir}}/authorized_keys
# Any user (e.g. one a test creates) logs in with the fleet's client key:
# sshd reads AuthorizedKeysFile as the user, who cannot read .Dir.
AuthorizedKeysCommand /usr/bin/cat {{.Dir}}/authorized_keys
AuthorizedKeysCommandUser root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
Subsystem sftp internal-sftp
LogLevel VERBOSE
MaxStartups 200
MaxSessions 20
UseDNS no
PrintMotd no
PrintLastLog no
`))

func (h *Host) writeConfig(t testing.TB) {
	var b bytes.Buffer
	if err := sshdConfig.Execute(&b, h); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "sshd_config"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *Host) newHostKey(t testing.TB) ssh.Signer {
	p := filepath.Join(h.Dir, "host_ed25519")
	os.Remove(p)
	os.Remove(p + ".pub")
	s, _ := remotetest.WriteKey(t, h.Dir, "host_ed25519")
	return s
}

// lockDir holds one lock file per claimed address.
var lockDir = filepath.Join(os.TempDir(), "ulp-sshfleet")

// claimAddr picks a free 127.0.1.N: its lock file is flock'ed by this
// process (released when the test ends or the process dies) and port 22
// there is free.
func (h *Host) claimAddr(t testing.TB) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n := 1; n < 255; n++ {
		addr := fmt.Sprintf("127.0.1.%d", n)
		f, err := os.OpenFile(filepath.Join(lockDir, addr+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close()
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, "22"))
		if err != nil {
			f.Close()
			continue
		}
		ln.Close()
		h.Addr, h.lock = addr, f
		t.Cleanup(func() { f.Close() })
		return
	}
	t.Fatal("sshfleet: no free address in 127.0.1.0/24")
}

// script runs as the namespace's init: private mounts, then sshd.
const script = `set -e
if [ -e /root/.bashrc ]; then mount --bind "$1/empty" /root/.bashrc; fi
mount --bind "$2" ` + StateDir + `
exec /usr/sbin/sshd -D -e -f "$1/sshd_config"
`

func (h *Host) start() error {
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--pid", "--fork",
		"--kill-child", "--mount-proc", "--", "/bin/sh", "-c", script, "sh", h.Dir, h.Root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	buf := &syncBuffer{}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", h.Name, err)
	}
	ready := make(chan struct{})
	exited := make(chan struct{})
	var readOnce sync.Once
	// The reader ends when the namespace dies (every writer gone); Wait
	// runs after it, as exec.Cmd requires for StderrPipe.
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			buf.WriteLine(sc.Text())
			if strings.Contains(sc.Text(), "Server listening on") {
				readOnce.Do(func() { close(ready) })
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	h.mu.Lock()
	h.cmd, h.stderr, h.exited = cmd, buf, exited
	h.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-exited:
		h.mu.Lock()
		h.cmd = nil
		h.mu.Unlock()
		return fmt.Errorf("%s (%s): sshd exited at start:\n%s", h.Name, h.Addr, buf.String())
	case <-time.After(startTimeout):
		h.Kill()
		return fmt.Errorf("%s (%s): sshd not listening after %v:\n%s", h.Name, h.Addr, startTimeout, buf.String())
	}
}

// syncBuffer is a goroutine-safe log of lines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) WriteLine(l string) {
	s.mu.Lock()
	s.b.WriteString(l)
	s.b.WriteByte('\n')
	s.mu.Unlock()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
