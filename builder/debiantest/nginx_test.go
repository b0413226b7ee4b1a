package debiantest_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ulp/internal/testenv"
)

// startStockNginx starts Debian's unmodified nginx on the stock libraries
// in libDir (LD_LIBRARY_PATH) with the runtime preloaded, and returns its
// master's PID and address; it is stopped when t ends.
func startStockNginx(t *testing.T, libDir string) (int, string) {
	t.Helper()
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.Nginx)
	env := []string{"LD_LIBRARY_PATH=" + libDir, "LD_PRELOAD=" + testenv.Artifact(t, "libpulp.so.0")}
	return testenv.StartNginx(t, t.TempDir(), "TLSv1.2 TLSv1.3", "ok ", env, func(addr string) bool { return fetch(addr, tls.VersionTLS13) == nil })
}

// fetch makes one request on a new TLS connection (a full handshake) with
// the given protocol version and checks the answer.
func fetch(addr string, version uint16) error {
	c := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, MinVersion: version, MaxVersion: version},
			DisableKeepAlives: true,
		},
	}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if want := map[uint16]string{tls.VersionTLS12: "ok TLSv1.2", tls.VersionTLS13: "ok TLSv1.3"}[version]; strings.TrimSpace(string(b)) != want {
		return fmt.Errorf("answer %q, want %q", b, want)
	}
	return nil
}

// loadLoop makes requests one after the other, alternating TLS 1.2 and 1.3,
// until stop is closed or max requests are made.
type loadLoop struct {
	mu     sync.Mutex
	ok     int
	failed []error
	done   chan struct{}
}

func startLoad(addr string, stop <-chan struct{}, max int) *loadLoop {
	l := &loadLoop{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 0; i < max; i++ {
			select {
			case <-stop:
				return
			default:
			}
			err := fetch(addr, []uint16{tls.VersionTLS12, tls.VersionTLS13}[i%2])
			l.mu.Lock()
			if err != nil {
				l.failed = append(l.failed, fmt.Errorf("request %d: %w", i, err))
			} else {
				l.ok++
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *loadLoop) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok + len(l.failed)
}

// waitFor waits until n more requests than now have been made.
func (l *loadLoop) waitFor(t *testing.T, n int) {
	t.Helper()
	want := l.count() + n
	deadline := time.Now().Add(60 * time.Second)
	for l.count() < want {
		select {
		case <-l.done:
			t.Fatalf("the request loop ended after %d requests", l.count())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests within 60s", l.count(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNginx_StockLibsslServesThroughLivepatch: an unmodified nginx (master
// and two workers) on Debian's stock libssl.so.3 and libcrypto.so.3 of
// 3.0.17-1~deb12u2 (extracted, on LD_LIBRARY_PATH) serves TLS while a
// livepatch built by ulp build from 3.0.22's handshake-reading change (code
// every handshake runs) is applied to all three processes and reverted,
// under a loop of requests each on a new TLS 1.2 or 1.3 connection: not one
// request fails.
func TestNginx_StockLibsslServesThroughLivepatch(t *testing.T) {
	src, libDir := stockOpenSSL(t)
	lpDir, err := os.MkdirTemp("", "ulp-nginx-build-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(lpDir) })
	if err := os.Chmod(lpDir, 0o755); err != nil { // the workers run as nobody
		t.Fatal(err)
	}
	lp := buildFix(t, src, libDir, lpDir, handshakeFix)
	if err := os.Chmod(lp, 0o644); err != nil {
		t.Fatal(err)
	}

	master, addr := startStockNginx(t, libDir)
	procs := append([]int{master}, testenv.Children(master)...)
	for _, pid := range procs {
		maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if err != nil || !strings.Contains(string(maps), filepath.Join(libDir, "libssl.so.3")) {
			t.Fatalf("nginx process %d does not run the stock libssl.so.3 of %s: %v", pid, libDir, err)
		}
	}
	stop := make(chan struct{})
	load := startLoad(addr, stop, 5000)
	stopLoad := sync.OnceFunc(func() { close(stop); <-load.done })
	defer stopLoad()

	load.waitFor(t, 20)
	for _, pid := range procs {
		if out := ulp(t, time.Minute, "trigger", "-p", strconv.Itoa(pid), lp); !strings.Contains(out, "SUCCESS") {
			t.Fatalf("apply to %d: %s", pid, out)
		}
	}
	for _, pid := range procs {
		ulp(t, time.Minute, "check", "-p", strconv.Itoa(pid), lp) // exit 0: applied
	}
	load.waitFor(t, 40)
	for _, pid := range procs {
		if out := ulp(t, time.Minute, "trigger", "--revert", "-p", strconv.Itoa(pid), lp); !strings.Contains(out, "SUCCESS") {
			t.Fatalf("revert in %d: %s", pid, out)
		}
	}
	load.waitFor(t, 20)
	stopLoad()
	load.mu.Lock()
	defer load.mu.Unlock()
	t.Logf("%d requests, %d failed", load.ok+len(load.failed), len(load.failed))
	for _, err := range load.failed {
		t.Error(err)
	}
	if w := testenv.Children(master); len(w) != 2 || (w[0] != procs[1] && w[0] != procs[2]) {
		t.Errorf("workers %v after the patch, were %v: nginx restarted them", w, procs[1:])
	}
}
