package trigger

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ulp/internal/testenv"
	"ulp/livepatch/report"
	"ulp/livepatch/trigger/triggertest"
)

const distroSSL = "/lib/x86_64-linux-gnu/libssl.so.3"

// startNginx starts Debian's nginx with the runtime preloaded and returns
// its master's PID and its address. The master and its workers are ended
// when t ends.
func startNginx(t *testing.T, dir string) (int, string) {
	t.Helper()
	testenv.Require(t, testenv.Root, testenv.Ptrace, testenv.Nginx)
	env := []string{"LD_PRELOAD=" + testenv.Artifact(t, "libpulp.so.0")}
	return testenv.StartNginx(t, dir, "TLSv1.3", "protocol=", env, func(addr string) bool { return get(addr) != "" })
}

// get fetches https://addr/ on a new connection and returns the body, or ""
// on any error.
func get(addr string) string {
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
		},
	}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// TestNginx_LiveTLSPatch live-patches SSL_get_version of Debian's
// libssl.so.3 in an unmodified nginx serving TLS (master and two workers,
// started with the runtime preloaded): clients see the replacement's
// answer without any restart, and the original one after the revert.
func TestNginx_LiveTLSPatch(t *testing.T) {
	testenv.Require(t, testenv.CC)
	// The workers run as nobody: the container's folder must be theirs to
	// read, as a livepatch package installs it.
	lpDir, err := os.MkdirTemp("", "ulp-nginx-lp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(lpDir) })
	if err := os.Chmod(lpDir, 0o755); err != nil {
		t.Fatal(err)
	}
	fx := &triggertest.Fixture{Dir: lpDir, LP: map[string]string{}}
	b, err := os.ReadFile(filepath.Join("testdata", "lp_ssl.c"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(fx.Dir, "lp_ssl.c")
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	so := filepath.Join(fx.Dir, "lp_ssl.so")
	testenv.CompileC(t, so, []string{"-shared", "-fPIC", "-O2", "-Wl,--build-id"}, src)
	lp := fx.PackFile(t, so, distroSSL, "SSL_get_version:ssl_get_version_lp")

	master, addr := startNginx(t, t.TempDir())
	procs := append([]int{master}, testenv.Children(master)...)
	expect := func(want string) {
		t.Helper()
		for range 20 {
			if got := get(addr); got != want {
				t.Fatalf("GET https://%s/ = %q, want %q", addr, got, want)
			}
		}
	}
	expect("protocol=TLSv1.3")
	for _, pid := range procs {
		mustTrig(t, pid, apply(lp), report.Success)
	}
	expect("protocol=TLSv1.3+livepatched")
	for _, pid := range procs {
		mustTrig(t, pid, revert(lp), report.Success)
	}
	expect("protocol=TLSv1.3")
	if w := testenv.Children(master); len(w) != 2 || w[0] != procs[1] && w[0] != procs[2] {
		t.Errorf("workers %v after the patch, were %v: nginx restarted them", w, procs[1:])
	}
}
