package inventory

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// dump is the resolved model written to golden files.
type dump struct {
	Hosts  []Host  `json:"hosts"`
	Groups []Group `json:"groups"`
}

func load(t *testing.T, name string) *Inventory {
	t.Helper()
	inv, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return inv
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, d)
	}
}

func TestLoad_Golden(t *testing.T) {
	for _, name := range []string{"prod.yaml", "script.json", "empty.yaml", "prod.ini"} {
		t.Run(name, func(t *testing.T) {
			inv := load(t, name)
			got, err := json.MarshalIndent(dump{inv.Hosts(), inv.Groups()}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".golden", append(got, '\n'))
		})
	}
}

// TestLoad_YAMLAndJSONAgree: `ansible-inventory --list` JSON of an
// inventory resolves to the same hosts as the YAML it came from.
func TestLoad_YAMLAndJSONAgree(t *testing.T) {
	y, j := load(t, "prod.yaml"), load(t, "prod.json")
	if d := cmp.Diff(y.Hosts(), j.Hosts()); d != "" {
		t.Errorf("hosts differ (-yaml +json):\n%s", d)
	}
}

// TestLoad_INIAgrees: the INI form of an inventory gives the same hosts,
// groups and connection settings as the YAML form (INI :vars values are
// strings, as in Ansible, so only the vars both forms spell alike are
// compared).
func TestLoad_INIAgrees(t *testing.T) {
	y, i := load(t, "prod.yaml"), load(t, "prod.ini")
	type conn struct {
		Name, Addr, User, Tier string
		Port                   int
		Groups                 []string
		MaxReq                 any
	}
	view := func(hs []Host) []conn {
		var out []conn
		for _, h := range hs {
			out = append(out, conn{h.Name, h.Addr, h.User, h.Vars["tier"].(string), h.Port, h.Groups, h.Vars["maxRequestsPerChild"]})
		}
		return out
	}
	if d := cmp.Diff(view(y.Hosts()), view(i.Hosts())); d != "" {
		t.Errorf("hosts differ (-yaml +ini):\n%s", d)
	}
	if h, _ := i.Host("db1.example.com"); h.Vars["http_port"] != "80" {
		t.Errorf(":vars values are strings in INI: http_port = %#v", h.Vars["http_port"])
	}
}

func TestLoadINI(t *testing.T) {
	tests := []struct {
		in   string
		want string // name:groups:vars of each host, or an error substring
		err  bool
	}{
		{"a\nb\n", "a:all,ungrouped b:all,ungrouped", false},
		{"a\n[g]\na\n", "a:all,g", false}, // listed in a group: no longer ungrouped
		{"[g]\nh x=1 y=1.5 z=True n=None s='two words' # comment\n", "h:all,g:n=<nil>,s=two words,x=1,y=1.5,z=true", false},
		{"[g]\nh:2200\n", "h:all,g:ansible_port=2200", false},
		{"old ansible_ssh_host=10.0.0.1 ansible_ssh_port=2022 ansible_ssh_user=u\n", "old:all,ungrouped:ansible_ssh_host=10.0.0.1,ansible_ssh_port=2022,ansible_ssh_user=u", false},
		{"[all:children]\ng\n[g]\nh\n", "h:all,g", false},
		{"[g:vars]\nx = ' q '\n[g]\nh\n", "h:all,g:x= q ", false},
		{"[g\nh\n", "line 1: section header", true},
		{"[g:bad]\nh\n", "line 1: section [g:bad]", true},
		{"[g:vars]\nnovalue\n", "line 2: group \"g\": want key=value", true},
		{"[g]\nh novalue\n", "line 2: host \"h\": want key=value", true},
		{"[g]\nh x='open\n", "line 2: unterminated", true},
		{"[a b]\n", "invalid group name", true},
		{"[g]\nw[3:1]\n[g:children]\ng\n", "end is before begin", true},
	}
	for _, tt := range tests {
		inv, err := LoadINI([]byte(tt.in))
		if tt.err {
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadINI(%q) err = %v, want %q", tt.in, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("LoadINI(%q): %v", tt.in, err)
			continue
		}
		var got []string
		for _, h := range inv.Hosts() {
			var vs []string
			for _, k := range sortedKeys(h.Vars) {
				vs = append(vs, fmt.Sprintf("%s=%v", k, h.Vars[k]))
			}
			s := h.Name + ":" + strings.Join(h.Groups, ",")
			if len(vs) > 0 {
				s += ":" + strings.Join(vs, ",")
			}
			got = append(got, s)
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("LoadINI(%q) = %s, want %s", tt.in, g, tt.want)
		}
	}
}

func TestLoad_Sniff(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"hosts":      "# ini\n[web]\nw1\n",
		"plain":      "w1\n",
		"inv.yml":    "all:\n  hosts:\n    w1:\n",
		"noext-yaml": "---\nall:\n  hosts:\n    w1:\n",
		"list":       `{"web": ["w1"]}`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		inv, err := Load(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, ok := inv.Host("w1"); !ok {
			t.Errorf("%s: no host w1", name)
		}
	}
}

func TestLoad_Resolution(t *testing.T) {
	inv := load(t, "prod.yaml")
	tests := []struct {
		host, addr, user, tier string
		port                   int
	}{
		// Case and dots are kept; ansible_host is the address.
		{"Bastion.Example.COM", "192.0.2.10", "deploy", "none", 22},
		// The deepest group wins: canary (depth 3) over web.
		{"web01.example.com", "web01.example.com", "deploy", "canary", 22},
		{"web02.example.com", "web02.example.com", "deploy", "web", 22},
		// Same depth: db has ansible_group_priority 10 > web's 1.
		{"web03.example.com", "web03.example.com", "deploy", "db", 22},
		{"web-b.example.com", "web-b.example.com", "deploy", "web", 2222},
		// Host vars beat group vars.
		{"db1.example.com", "192.0.2.21", "postgres", "db", 22},
	}
	for _, tt := range tests {
		h, ok := inv.Host(tt.host)
		if !ok {
			t.Errorf("host %q missing", tt.host)
			continue
		}
		if h.Addr != tt.addr || h.User != tt.user || h.Port != tt.port || h.Vars["tier"] != tt.tier {
			t.Errorf("%s: got addr %q user %q port %d tier %v, want %q %q %d %q",
				tt.host, h.Addr, h.User, h.Port, h.Vars["tier"], tt.addr, tt.user, tt.port, tt.tier)
		}
	}
	old, err := LoadINI([]byte("old ansible_ssh_host=10.0.0.1 ansible_ssh_port=2022 ansible_ssh_user=u\n"))
	if h, _ := old.Host("old"); err != nil || h.Addr != "10.0.0.1" || h.Port != 2022 || h.User != "u" {
		t.Errorf("ansible_ssh_* aliases: %+v, %v", h, err)
	}
	if _, ok := inv.Host("bastion.example.com"); ok {
		t.Error("host lookup must be case-sensitive")
	}
	if h, _ := inv.Host("db1.example.com"); h.Vars["maxRequestsPerChild"] != int64(100) {
		t.Errorf("variable case not kept: %v", h.Vars)
	}
	if h, _ := inv.Host("Bastion.Example.COM"); !equal(h.Groups, []string{"all", "ungrouped"}) {
		t.Errorf("bastion groups = %v", h.Groups)
	}
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func TestExpandRange(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"web", "web", ""},
		{"web[01:03]", "web01,web02,web03", ""},
		{"web[1:3].ex.com", "web1.ex.com,web2.ex.com,web3.ex.com", ""},
		{"w[8:12]", "w8,w9,w10,w11,w12", ""},
		{"w[01:10:4]", "w01,w05,w09", ""},
		{"db-[a:c]", "db-a,db-b,db-c", ""},
		{"[A:B]x", "Ax,Bx", ""},
		{"r[1:2]c[a:b]", "r1ca,r1cb,r2ca,r2cb", ""},
		{"w[:2]", "w0,w1,w2", ""},
		{"w[3:1]", "", "end is before begin"},
		{"w[01:100]", "", "same width"},
		{"w[1:2", "", "missing ']'"},
		{"w1:2]", "", "unexpected ']'"},
		{"w[1:2:0]", "", "step"},
		{"w[a:Z]", "", "mixes upper and lower"},
		{"w[x]", "", "want [begin:end]"},
		{"w[1:9223372036854775807]", "", "too large"},
		{"w[0:999][0:999]", "", "too large"},
	}
	for _, tt := range tests {
		got, err := expandRange(tt.in, 1000)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("expandRange(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != tt.want {
			t.Errorf("expandRange(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestLoadYAML_Errors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // every substring must appear
	}{
		{"not yaml", "all: [", []string{"yaml:"}},
		{"top list", "- a\n- b\n", []string{"line 1", "mapping of group names"}},
		{"hosts list", "all:\n  hosts:\n    - a\n", []string{"line 3", "list is not allowed"}},
		{"unknown key", "all:\n  host:\n    a:\n", []string{"line 2", `unexpected key "host"`}},
		{"bad port", "all:\n  hosts:\n    a:\n      ansible_port: 70000\n", []string{`host "a"`, "ansible_port"}},
		{"bad port string", "all:\n  hosts:\n    a:2x:\n", []string{"invalid port"}},
		{"bad user", "all:\n  hosts:\n    a:\n      ansible_user: [x]\n", []string{"ansible_user"}},
		{"cycle", "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n            a:\n", []string{"cycle"}},
		{"all as child", "all:\n  children:\n    x:\n      children:\n        all:\n", []string{"cannot be a child"}},
		{"bad range", "all:\n  hosts:\n    w[3:1]:\n", []string{"line 3", "end is before begin"}},
		{"bad name", "all:\n  hosts:\n    'a b':\n", []string{"invalid host name"}},
		{"vars list", "all:\n  vars: [1]\n", []string{"mapping of variables"}},
		{"every problem", "all:\n  hosts:\n    w[3:1]:\n    x:\n      ansible_port: 0\n  children:\n    g:\n      hostz:\n", []string{"end is before begin", "ansible_port", `unexpected key "hostz"`}},
		{"huge range", "all:\n  hosts:\n    w[0:99999999]:\n", []string{"too large"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := LoadYAML([]byte(tt.in))
			if err == nil {
				t.Fatalf("no error; hosts %v", inv.Hosts())
			}
			if inv != nil {
				t.Error("an error must come with a nil inventory")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadJSON_Errors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"web": 5}`, `group "web"`},
		{`{"web": {"hosts": "a"}}`, `group "web"`},
		{`{"_meta": []}`, "_meta"},
		{`{"web": ["a"]} x`, "json"},
		{`{"web": {"hosts": ["a b"]}}`, "invalid host name"},
		{`{"_meta": {"hostvars": {"a": {"ansible_port": 1.5}}}}`, "ansible_port"},
	}
	for _, tt := range tests {
		_, err := LoadJSON([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadJSON(%s) error = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestSelect(t *testing.T) {
	inv := load(t, "prod.yaml")
	tests := []struct {
		pattern string
		want    string
		err     error
	}{
		{"", "Bastion.Example.COM,web01.example.com,web02.example.com,web03.example.com,web-a.example.com,web-b.example.com,db1.example.com", nil},
		{"canary", "web01.example.com", nil},
		{"web:db", "web01.example.com,web02.example.com,web03.example.com,web-a.example.com,web-b.example.com,db1.example.com", nil},
		{"web:&db", "web03.example.com", nil},
		{"web:!canary:!web-*", "web02.example.com,web03.example.com", nil},
		{"web,!canary,!web-*", "web02.example.com,web03.example.com", nil},
		{"!prod", "Bastion.Example.COM", nil},
		{"Bastion.Example.COM", "Bastion.Example.COM", nil},
		{"web0[12]*", "web01.example.com,web02.example.com", nil},
		{"~^web-[ab]", "web-a.example.com,web-b.example.com", nil},
		{"d*", "web03.example.com,db1.example.com", nil}, // group db matches the glob
		{"bastion.example.com", "", ErrNoMatch},
		{"web:nosuch", "", ErrNoMatch},
		{"canary:&db", "", ErrNoMatch},
		{"~(", "", nil},
	}
	for _, tt := range tests {
		hosts, err := inv.Select(tt.pattern)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Select(%q) = %v, want an error", tt.pattern, hosts)
			} else if tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("Select(%q) error = %v, want %v", tt.pattern, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Select(%q): %v", tt.pattern, err)
			continue
		}
		var names []string
		for _, h := range hosts {
			names = append(names, h.Name)
		}
		if got := strings.Join(names, ","); got != tt.want {
			t.Errorf("Select(%q) = %s, want %s", tt.pattern, got, tt.want)
		}
	}
}

func TestLoad_TooLarge(t *testing.T) {
	in := "all:\n  hosts:\n    a[000000:099999]:\n    b[0:1]:\n"
	_, err := LoadYAML([]byte(in))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func seeds(f *testing.F, ext string) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*"+ext))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func FuzzLoadYAML(f *testing.F) {
	seeds(f, ".yaml")
	f.Add([]byte("a: &x {hosts: {h[1:3]: {v: *x}}}\nb: {children: {a: *x}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := LoadYAML(data)
		if (err == nil) == (inv == nil) {
			t.Fatalf("inv %v with err %v", inv, err)
		}
		if inv != nil {
			for _, h := range inv.Hosts() {
				if h.Port < 1 || h.Port > 65535 || h.Addr == "" {
					t.Fatalf("bad host %+v", h)
				}
			}
			_, _ = inv.Select("all:!x*:&~y")
		}
	})
}

func FuzzLoadINI(f *testing.F) {
	seeds(f, ".ini")
	f.Add([]byte("[g:children]\ng\n[g]\nh'x y' a=\"b c\" #x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := LoadINI(data)
		if (err == nil) == (inv == nil) {
			t.Fatalf("inv %v with err %v", inv, err)
		}
		if inv != nil {
			for _, h := range inv.Hosts() {
				if h.Port < 1 || h.Port > 65535 || h.Addr == "" {
					t.Fatalf("bad host %+v", h)
				}
			}
		}
	})
}

func FuzzLoadJSON(f *testing.F) {
	seeds(f, ".json")
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := LoadJSON(data)
		if (err == nil) == (inv == nil) {
			t.Fatalf("inv %v with err %v", inv, err)
		}
		if inv != nil {
			for _, h := range inv.Hosts() {
				if h.Port < 1 || h.Port > 65535 || h.Addr == "" {
					t.Fatalf("bad host %+v", h)
				}
			}
		}
	})
}
