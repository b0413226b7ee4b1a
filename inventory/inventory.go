package inventory

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Errors that callers branch on.
var (
	// ErrNoMatch means a selector term matched no host or group.
	ErrNoMatch = errors.New("no host matches")
	// ErrTooLarge means the inventory exceeds a size limit (file size,
	// number of hosts, nesting depth).
	ErrTooLarge = errors.New("inventory too large")
)

// Limits that bound the work done on hostile input.
const (
	// MaxFileSize is the largest inventory file Load reads.
	MaxFileSize = 32 << 20
	// MaxHosts is the largest number of hosts an inventory may define,
	// counted after range expansion.
	MaxHosts = 100_000
	// maxDepth bounds group nesting and YAML node nesting.
	maxDepth = 64
	// maxNodes bounds the YAML nodes walked (aliases can multiply them).
	maxNodes = 1_000_000
)

// DefaultPort is the SSH port of a host without ansible_port.
const DefaultPort = 22

// Names of the groups every inventory has.
const (
	All       = "all"
	Ungrouped = "ungrouped"
)

// SyntaxError is one problem found in an inventory. Line is 1-based and 0
// when the format carries no positions (JSON).
// Err, when set, is the underlying cause (for example ErrTooLarge).
type SyntaxError struct {
	Line int
	Msg  string
	Err  error
}

func (e *SyntaxError) Error() string {
	msg := e.Msg
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Line > 0 {
		return fmt.Sprintf("inventory: line %d: %s", e.Line, msg)
	}
	return "inventory: " + msg
}

func (e *SyntaxError) Unwrap() error { return e.Err }

// Host is one host of an inventory, with its variables resolved.
type Host struct {
	// Name is the inventory name, exactly as written (case and dots kept).
	Name string `json:"name"`
	// Addr is ansible_host, or Name when unset.
	Addr string `json:"addr"`
	// Port is ansible_port, or DefaultPort.
	Port int `json:"port"`
	// User is ansible_user; empty means the controller's default user.
	User string `json:"user,omitempty"`
	// Groups lists every group the host belongs to, directly or through
	// a child group, including "all", sorted.
	Groups []string `json:"groups"`
	// Vars are the host's variables after Ansible's precedence: group vars
	// from the shallowest group to the deepest (siblings by
	// ansible_group_priority, then by name), then host vars.
	Vars map[string]any `json:"vars"`
}

// Address returns "addr:port" for dialling.
func (h Host) Address() string { return net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)) }

// Group is one group of an inventory.
type Group struct {
	Name string `json:"name"`
	// Hosts are the hosts listed directly in the group, in inventory order.
	Hosts []string `json:"hosts,omitempty"`
	// Children are the direct child groups, in inventory order.
	Children []string       `json:"children,omitempty"`
	Vars     map[string]any `json:"vars,omitempty"`
	// Depth is the longest path from "all" (0) to the group.
	Depth int `json:"depth"`
}

// Inventory is a parsed, resolved inventory. It is immutable and safe for
// concurrent use.
type Inventory struct {
	hosts  []Host
	byName map[string]int
	groups map[string]*Group
}

// Load reads the inventory file at path. The format is chosen by the
// extension (.yaml or .yml: YAML; .json: JSON; .ini: INI), else by content:
// a file whose first non-space byte is '{' is `ansible-inventory --list`
// JSON, one whose first line is a [section] or a host name (no ':') is
// INI, anything else YAML.
func Load(path string) (*Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("inventory: read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("inventory: %s: %w: more than %d bytes", path, ErrTooLarge, MaxFileSize)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return LoadYAML(data)
	case ".json":
		return LoadJSON(data)
	case ".ini":
		return LoadINI(data)
	}
	return loadSniffed(data)
}

// loadSniffed picks the format of data from its first meaningful line.
func loadSniffed(data []byte) (*Inventory, error) {
	for line := range strings.Lines(string(data)) {
		s := strings.TrimSpace(line)
		switch {
		case s == "" || s[0] == '#' || s[0] == ';' || s == "---":
			continue
		case s[0] == '{':
			return LoadJSON(data)
		case s[0] == '[' || !strings.Contains(s, ":"):
			return LoadINI(data)
		}
		break
	}
	return LoadYAML(data)
}

// Hosts returns every host in inventory order.
func (inv *Inventory) Hosts() []Host { return slices.Clone(inv.hosts) }

// Host returns the host named name (exact, case-sensitive).
func (inv *Inventory) Host(name string) (Host, bool) {
	i, ok := inv.byName[name]
	if !ok {
		return Host{}, false
	}
	return inv.hosts[i], true
}

// Groups returns every group, sorted by name.
func (inv *Inventory) Groups() []Group {
	names := make([]string, 0, len(inv.groups))
	for n := range inv.groups {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]Group, len(names))
	for i, n := range names {
		out[i] = *inv.groups[n]
	}
	return out
}

// GroupHosts returns the hosts of group name and of its descendants, in
// inventory order, and false when there is no such group.
func (inv *Inventory) GroupHosts(name string) ([]Host, bool) {
	if _, ok := inv.groups[name]; !ok {
		return nil, false
	}
	var out []Host
	for _, h := range inv.hosts {
		if slices.Contains(h.Groups, name) {
			out = append(out, h)
		}
	}
	return out, true
}
