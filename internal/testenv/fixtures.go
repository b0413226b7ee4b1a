package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// WriteSelfSignedCert writes cert.pem and key.pem, a self-signed ECDSA
// certificate for 127.0.0.1 valid for a day and its key, into dir.
func WriteSelfSignedCert(t testing.TB, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, blk := range map[string]*pem.Block{
		"cert.pem": {Type: "CERTIFICATE", Bytes: der},
		"key.pem":  {Type: "EC PRIVATE KEY", Bytes: kder},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Children returns the PIDs whose parent is pid, read from /proc/*/stat.
func Children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	parent := strconv.Itoa(pid)
	var pids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == parent {
			pids = append(pids, p)
		}
	}
	return pids
}

// nginxConf is the configuration StartNginx runs nginx with: in the
// foreground, a master and two workers, its files in %[1]s, TLS with the
// protocols %[3]s on the address %[2]s, answering every request with %[4]s
// followed by the connection's protocol ($ssl_protocol, which libssl's
// SSL_get_version gives).
const nginxConf = `daemon off;
master_process on;
user nobody nogroup;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/tmp;
	proxy_temp_path %[1]s/tmp;
	fastcgi_temp_path %[1]s/tmp;
	uwsgi_temp_path %[1]s/tmp;
	scgi_temp_path %[1]s/tmp;
	server {
		listen %[2]s ssl;
		ssl_certificate %[1]s/cert.pem;
		ssl_certificate_key %[1]s/key.pem;
		ssl_protocols %[3]s;
		location / { return 200 "%[4]s$ssl_protocol\n"; }
	}
}
`

// StartNginx starts Debian's nginx (/usr/sbin/nginx, in the foreground) with
// its prefix, logs and temporary files in dir, serving TLS with protocols
// (e.g. "TLSv1.2 TLSv1.3") on a free 127.0.0.1 address and answering each
// request with answer followed by the connection's protocol; dir/cert.pem
// and dir/key.pem are a self-signed certificate for it; env is added to
// nginx's environment. It waits until the master has two workers and
// up(addr) holds, and returns the master's PID and the address. The master
// and its workers are ended when t ends. The caller requires Nginx (and
// what else its test needs).
func StartNginx(t testing.TB, dir, protocols, answer string, env []string, up func(addr string) bool) (int, string) {
	t.Helper()
	WriteSelfSignedCert(t, dir)
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, addr, protocols, answer)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/sbin/nginx", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	master := cmd.Process.Pid
	t.Cleanup(func() {
		workers := Children(master)
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }() // owned: the cleanup waits for it
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		for _, w := range workers {
			syscall.Kill(w, syscall.SIGKILL) // normally gone with the master
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for len(Children(master)) < 2 || !up(addr) {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not come up on %s:\n%s", addr, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return master, addr
}
