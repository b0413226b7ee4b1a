package inventory

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// builder collects groups and hosts from either format and resolves them
// into an Inventory. It records every problem instead of stopping at the
// first one.
type builder struct {
	groups    map[string]*groupDef
	hosts     map[string]*hostDef
	hostOrder []string
	errs      []error
}

type groupDef struct {
	name     string
	hosts    []string
	hostSet  map[string]bool
	children []string
	vars     map[string]any
	line     int
}

type hostDef struct {
	vars map[string]any
	line int
}

func newBuilder() *builder {
	return &builder{groups: map[string]*groupDef{}, hosts: map[string]*hostDef{}}
}

func (b *builder) errorf(line int, format string, args ...any) {
	b.errs = append(b.errs, &SyntaxError{Line: line, Msg: fmt.Sprintf(format, args...)})
}

// validName reports whether s can be a group or host name: selectors split
// on ':' and ',' and names never contain spaces.
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n,:") && !strings.HasPrefix(s, "&") &&
		!strings.HasPrefix(s, "!") && !strings.HasPrefix(s, "~") && !strings.HasPrefix(s, "@")
}

// group returns the group named name, creating it.
func (b *builder) group(name string, line int) *groupDef {
	g, ok := b.groups[name]
	if !ok {
		g = &groupDef{name: name, vars: map[string]any{}, hostSet: map[string]bool{}, line: line}
		b.groups[name] = g
	}
	return g
}

// addChild records child as a child group of parent.
func (b *builder) addChild(parent, child string, line int) {
	if !validName(child) {
		b.errorf(line, "group %q: invalid child group name %q", parent, child)
		return
	}
	if child == All {
		b.errorf(line, "group %q: %q cannot be a child group", parent, All)
		return
	}
	p := b.group(parent, line)
	b.group(child, line)
	if !slices.Contains(p.children, child) {
		p.children = append(p.children, child)
	}
}

// addHosts expands pattern (ranges, an optional ":port") and adds the hosts
// to group with vars.
func (b *builder) addHosts(group, pattern string, vars map[string]any, line int) {
	name, port, err := splitPort(pattern)
	if err != nil {
		b.errorf(line, "group %q: host %q: %v", group, pattern, err)
		return
	}
	names, err := expandRange(name, MaxHosts-len(b.hosts))
	if err != nil {
		b.errs = append(b.errs, &SyntaxError{Line: line, Msg: fmt.Sprintf("group %q: host %q", group, pattern), Err: err})
		return
	}
	if port != 0 {
		vars = maps.Clone(vars)
		vars["ansible_port"] = int64(port)
	}
	for _, n := range names {
		if !b.addHost(group, n, vars, line) {
			return
		}
	}
}

// addHost adds host name to group and merges vars into its host vars. It
// returns false when the inventory has too many hosts.
func (b *builder) addHost(group, name string, vars map[string]any, line int) bool {
	if !validName(name) {
		b.errorf(line, "group %q: invalid host name %q", group, name)
		return true
	}
	h, ok := b.hosts[name]
	if !ok {
		if len(b.hosts) >= MaxHosts {
			b.errs = append(b.errs, fmt.Errorf("inventory: line %d: %w: more than %d hosts", line, ErrTooLarge, MaxHosts))
			return false
		}
		h = &hostDef{vars: map[string]any{}, line: line}
		b.hosts[name] = h
		b.hostOrder = append(b.hostOrder, name)
	}
	maps.Copy(h.vars, vars)
	b.group(group, line).addHost(name)
	return true
}

func (g *groupDef) addHost(name string) {
	if !g.hostSet[name] {
		g.hostSet[name] = true
		g.hosts = append(g.hosts, name)
	}
}

// splitPort splits a trailing ":port" off a YAML host key ("db:2222").
func splitPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.IndexByte(s, ':') != i || strings.Contains(s[i:], "]") {
		return s, 0, nil
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("invalid port %q", s[i+1:])
	}
	return s[:i], p, nil
}

// resolve checks the group graph and computes every host's groups, vars
// and connection settings.
func (b *builder) resolve() (*Inventory, error) {
	all := b.group(All, 0)
	// Groups that nobody lists as a child are children of "all".
	isChild := map[string]bool{}
	for _, g := range b.groups {
		for _, c := range g.children {
			isChild[c] = true
		}
	}
	for _, n := range sortedKeys(b.groups) {
		if n != All && !isChild[n] && !slices.Contains(all.children, n) {
			all.children = append(all.children, n)
		}
	}
	// Hosts in no group but "all" go to "ungrouped", and only they.
	grouped := map[string]bool{}
	for n, g := range b.groups {
		if n == All || n == Ungrouped {
			continue
		}
		for _, h := range g.hosts {
			grouped[h] = true
		}
	}
	if ug, ok := b.groups[Ungrouped]; ok {
		kept := ug.hosts[:0]
		for _, h := range ug.hosts {
			if grouped[h] {
				delete(ug.hostSet, h)
			} else {
				kept = append(kept, h)
			}
		}
		ug.hosts = kept
	}
	for _, h := range b.hostOrder {
		if !grouped[h] {
			b.group(Ungrouped, 0).addHost(h)
		}
	}
	if _, ok := b.groups[Ungrouped]; ok && !slices.Contains(all.children, Ungrouped) && !isChild[Ungrouped] {
		all.children = append(all.children, Ungrouped)
	}

	depth := b.depths()
	inv := &Inventory{byName: map[string]int{}, groups: map[string]*Group{}}
	for n, g := range b.groups {
		inv.groups[n] = &Group{Name: n, Hosts: g.hosts, Children: g.children, Vars: g.vars, Depth: depth[n]}
	}

	// Direct membership, then ancestors.
	parents := map[string][]string{}
	for n, g := range b.groups {
		for _, c := range g.children {
			parents[c] = append(parents[c], n)
		}
	}
	direct := map[string][]string{}
	for _, n := range sortedKeys(b.groups) {
		for _, h := range b.groups[n].hosts {
			direct[h] = append(direct[h], n)
		}
	}
	for _, name := range b.hostOrder {
		member := map[string]bool{All: true}
		var walk func(string)
		walk = func(g string) {
			if member[g] {
				return
			}
			member[g] = true
			for _, p := range parents[g] {
				walk(p)
			}
		}
		for _, n := range direct[name] {
			walk(n)
		}
		groups := sortedKeys(member)
		order := slices.Clone(groups)
		slices.SortFunc(order, func(x, y string) int {
			return cmp.Or(cmp.Compare(depth[x], depth[y]),
				cmp.Compare(priority(b.groups[x].vars), priority(b.groups[y].vars)),
				cmp.Compare(x, y))
		})
		vars := map[string]any{}
		for _, g := range order {
			maps.Copy(vars, b.groups[g].vars)
		}
		hd := b.hosts[name]
		maps.Copy(vars, hd.vars)
		h := Host{Name: name, Addr: name, Port: DefaultPort, Groups: groups, Vars: vars}
		if v, ok := lookup(vars, "ansible_host", "ansible_ssh_host"); ok {
			s, ok := v.(string)
			if !ok || s == "" || strings.ContainsAny(s, " \t\r\n") {
				b.errorf(hd.line, "host %q: ansible_host must be a host name or address, not %v", name, v)
			} else {
				h.Addr = s
			}
		}
		if v, ok := lookup(vars, "ansible_port", "ansible_ssh_port"); ok {
			p, ok := toPort(v)
			if !ok {
				b.errorf(hd.line, "host %q: ansible_port must be a number from 1 to 65535, not %v", name, v)
			}
			h.Port = p
		}
		if v, ok := lookup(vars, "ansible_user", "ansible_ssh_user"); ok {
			s, ok := v.(string)
			if !ok || strings.ContainsAny(s, " \t\r\n:@") {
				b.errorf(hd.line, "host %q: ansible_user must be a user name, not %v", name, v)
			} else {
				h.User = s
			}
		}
		inv.byName[name] = len(inv.hosts)
		inv.hosts = append(inv.hosts, h)
	}
	if len(b.errs) > 0 {
		return nil, errors.Join(b.errs...)
	}
	return inv, nil
}

// depths computes each group's longest distance from "all" and reports
// cycles in the children graph.
func (b *builder) depths() map[string]int {
	depth := map[string]int{}
	state := map[string]int{} // 0 new, 1 on stack, 2 done
	var visit func(string, int)
	visit = func(n string, d int) {
		if state[n] == 1 {
			b.errorf(b.groups[n].line, "group %q is its own ancestor (children form a cycle)", n)
			return
		}
		if d > maxDepth {
			b.errs = append(b.errs, fmt.Errorf("inventory: group %q: %w: nested deeper than %d", n, ErrTooLarge, maxDepth))
			return
		}
		if state[n] == 2 && depth[n] >= d {
			return
		}
		depth[n] = max(depth[n], d)
		state[n] = 1
		for _, c := range b.groups[n].children {
			visit(c, d+1)
			if len(b.errs) > 0 {
				break
			}
		}
		state[n] = 2
	}
	visit(All, 0)
	return depth
}

// lookup returns vars[name], else vars[alias] (the ansible_ssh_* names
// that older inventories use).
func lookup(vars map[string]any, name, alias string) (any, bool) {
	if v, ok := vars[name]; ok {
		return v, true
	}
	v, ok := vars[alias]
	return v, ok
}

// priority returns a group's ansible_group_priority (default 1).
func priority(vars map[string]any) int64 {
	if v, ok := vars["ansible_group_priority"]; ok {
		switch n := v.(type) {
		case int64:
			return n
		case string:
			if p, err := strconv.ParseInt(n, 10, 64); err == nil {
				return p
			}
		}
	}
	return 1
}

func toPort(v any) (int, bool) {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case float64:
		if x != math.Trunc(x) {
			return 0, false
		}
		n = int64(x)
	case string:
		p, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, false
		}
		n = p
	default:
		return 0, false
	}
	if n < 1 || n > 65535 {
		return 0, false
	}
	return int(n), true
}

// normalize makes decoded values uniform across YAML and JSON: maps with
// string keys, integers as int64, other numbers as float64.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case int:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return float64(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	default:
		return v
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
