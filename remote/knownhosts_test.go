package remote

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newPub(t testing.TB) ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKnownIndex_SameAsXCrypto: for plain, [host]:port, wildcard, negated
// and hashed entries, the index finds for each name exactly the keys that
// x/crypto's knownhosts finds, except that patterns match without regard
// to case, as in OpenSSH (x/crypto lowercases only the name).
func TestKnownIndex_SameAsXCrypto(t *testing.T) {
	keys := make([]ssh.PublicKey, 8)
	for i := range keys {
		keys[i] = newPub(t)
	}
	line := func(patterns string, k ssh.PublicKey) string {
		return patterns + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + "\n"
	}
	file := "# comment\n\n" +
		line("web01.example.com,192.0.2.1", keys[0]) +
		line("[web02.example.com]:2222", keys[1]) +
		line("DB1.Example.COM", keys[2]) +
		line("*.lab.example.com,!secret.lab.example.com", keys[3]) +
		line("db?.example.com", keys[4]) +
		line(knownhosts.HashHostname("hashed.example.com"), keys[5]) +
		line(knownhosts.HashHostname("[hashed.example.com]:2222"), keys[6]) +
		line("web01.example.com", keys[7])
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	ix, err := parseKnownHosts([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := knownhosts.New(path)
	if err != nil {
		t.Fatal(err)
	}
	probe := newPub(t)
	for _, hostport := range []string{"web01.example.com:22", "192.0.2.1:22", "web02.example.com:2222", "web02.example.com:22",
		"db1.example.com:22", "db2.example.com:22", "db10.example.com:22", "a.lab.example.com:22", "secret.lab.example.com:22",
		"hashed.example.com:22", "hashed.example.com:2222", "hashed.example.com:2223", "nowhere:22"} {
		var want []string
		var ke *knownhosts.KeyError
		// The address adds no match: 0.0.0.0 is in no line.
		if err := ref(hostport, &net.TCPAddr{IP: net.IPv4zero}, probe); errors.As(err, &ke) {
			for _, k := range ke.Want {
				want = append(want, fmt.Sprintf("%d", k.Line))
			}
		}
		var got []string
		for _, k := range ix.match(knownhosts.Normalize(strings.ToLower(hostport))).keys {
			got = append(got, fmt.Sprintf("%d", k.Line))
		}
		if hostport == "db1.example.com:22" {
			want = append([]string{"5"}, want...) // DB1.Example.COM
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: lines %v, x/crypto finds %v", hostport, got, want)
		}
	}
}

func TestKnownIndex_Markers(t *testing.T) {
	ca, other, revoked := newPub(t), newPub(t), newPub(t)
	auth := func(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }
	file := "@cert-authority *.example.com " + auth(ca) + "\n" +
		"@cert-authority " + knownhosts.HashHostname("hidden.example.org") + " " + auth(other) + "\n" +
		"@revoked * " + auth(revoked) + "\n"
	path := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(path, []byte(file), 0o600)
	ix, err := parseKnownHosts([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	if m := ix.match("web.example.com"); len(m.cas) != 1 || !bytes.Equal(m.cas[0].Key.Marshal(), ca.Marshal()) || len(m.keys) != 0 {
		t.Errorf("web.example.com: %+v", m)
	}
	if m := ix.match("hidden.example.org"); len(m.cas) != 1 || m.cas[0].Line != 2 {
		t.Errorf("hidden.example.org: %+v", m)
	}
	if m := ix.match("example.net"); len(m.cas)+len(m.keys) != 0 {
		t.Errorf("example.net: %+v", m)
	}
	if !ix.isRevoked(revoked) || ix.isRevoked(ca) {
		t.Error("@revoked not indexed")
	}
}

func TestParseKnownHosts_Errors(t *testing.T) {
	k := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newPub(t))))
	for _, tt := range []struct{ body, want string }{
		{"host ssh-ed25519 AAAA\n", ":1:"},
		{"ok " + k + "\nbad\tssh-rsa x\n", ":2:"},
		{"@nonsense host " + k + "\n", "unknown marker"},
		{"|1|bad|salt " + k + "\n", "hashed host"},
		{"|2|c2FsdA==|aGFzaA== " + k + "\n", "want |1|salt|hash"},
	} {
		path := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(path, []byte(tt.body), 0o600)
		if _, err := parseKnownHosts([]string{path}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.body, err, tt.want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{"*", "", true}, {"*", "a.b", true}, {"a*", "a", true}, {"a*c", "abbc", true}, {"a*c", "abcd", false},
		{"?", "a", true}, {"?", "", false}, {"db?.x", "db1.x", true}, {"db?.x", "db10.x", false},
		{"[h]:2222", "[h]:2222", true}, {"[*]:2222", "[web]:2222", true}, {"[*]:2222", "web", false},
		{"*.*.com", "a.b.com", true}, {"*a*a*", "banana", true}, {"*x*", "banana", false},
	} {
		if got := globMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v", tt.pattern, tt.name, got)
		}
	}
}

// FuzzKnownHosts: any file either fails to parse or gives an index whose
// lookups never panic.
func FuzzKnownHosts(f *testing.F) {
	k := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newPub(f))))
	f.Add([]byte("web01,192.0.2.1 " + k + "\n@cert-authority *.x " + k + "\n@revoked * " + k + "\n" + knownhosts.HashHostname("h") + " " + k + "\n"))
	f.Add([]byte("!a,*b?,[c]:22 " + k + "\n# c\n\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "known_hosts")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ix, err := parseKnownHosts([]string{path})
		if err != nil {
			return
		}
		for _, name := range []string{"web01", "a", "xb1", "[c]:22", "h", ""} {
			ix.match(name)
		}
	})
}

// BenchmarkKnownHostsLookup: the host-key lookup of one Dial in a
// known_hosts of 10,000 hosts, parsed once: plain names and hashed ones
// (the cost of an uncached name: one HMAC per hashed line).
func BenchmarkKnownHostsLookup(b *testing.B) {
	for _, hashed := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "hashed"}[hashed], func(b *testing.B) {
			k := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newPub(b))))
			var buf bytes.Buffer
			for i := range 10000 {
				name := fmt.Sprintf("host%05d.example.com", i)
				if hashed {
					name = knownhosts.HashHostname(name)
				}
				buf.WriteString(name + " " + k + "\n")
			}
			path := filepath.Join(b.TempDir(), "known_hosts")
			os.WriteFile(path, buf.Bytes(), 0o600)
			ix, err := parseKnownHosts([]string{path})
			if err != nil {
				b.Fatal(err)
			}
			s := newHMACState()
			i := 0
			for b.Loop() {
				if keys := ix.hosts.lookup(fmt.Sprintf("host%05d.example.com", i*7919%10000), s); len(keys) != 1 {
					b.Fatalf("%d keys", len(keys))
				}
				i++
			}
		})
	}
}

// BenchmarkKnownHostsLookupXCrypto is BenchmarkKnownHostsLookup/hashed
// with x/crypto's knownhosts, which the index replaced: one callback call
// (it scans for the name and for the address).
func BenchmarkKnownHostsLookupXCrypto(b *testing.B) {
	k := newPub(b)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	var buf bytes.Buffer
	for i := range 10000 {
		buf.WriteString(knownhosts.HashHostname(fmt.Sprintf("host%05d.example.com", i)) + " " + line + "\n")
	}
	path := filepath.Join(b.TempDir(), "known_hosts")
	os.WriteFile(path, buf.Bytes(), 0o600)
	cb, err := knownhosts.New(path)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if err := cb(fmt.Sprintf("host%05d.example.com:22", i*7919%10000), &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 22}, k); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
