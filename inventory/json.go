package inventory

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// jsonGroup is a group in `ansible-inventory --list` output.
type jsonGroup struct {
	Hosts    []string       `json:"hosts"`
	Children []string       `json:"children"`
	Vars     map[string]any `json:"vars"`
}

// LoadJSON parses the JSON that `ansible-inventory --list` (or a dynamic
// inventory script) prints:
//
//	{"_meta": {"hostvars": {"web01": {"ansible_host": "10.0.0.1"}}},
//	 "all": {"children": ["ungrouped", "web"]},
//	 "web": {"hosts": ["web01"], "vars": {"http_port": 80}}}
//
// A group may also be a plain list of host names. Host order follows the
// groups from "all" depth-first, then the other groups by name.
func LoadJSON(data []byte) (*Inventory, error) {
	var top map[string]json.RawMessage
	if err := unmarshal(data, &top); err != nil {
		return nil, &SyntaxError{Msg: fmt.Sprintf("json: %v", err)}
	}
	b := newBuilder()
	var meta struct {
		HostVars map[string]map[string]any `json:"hostvars"`
	}
	if raw, ok := top["_meta"]; ok {
		if err := unmarshal(raw, &meta); err != nil {
			b.errorf(0, "_meta: %v", err)
		}
		delete(top, "_meta")
	}
	groups := map[string]jsonGroup{}
	for _, name := range sortedKeys(top) {
		raw := bytes.TrimSpace(top[name])
		var g jsonGroup
		var err error
		if len(raw) > 0 && raw[0] == '[' {
			err = unmarshal(raw, &g.Hosts)
		} else {
			err = unmarshal(raw, &g)
		}
		if err != nil {
			b.errorf(0, "group %q: %v", name, err)
			continue
		}
		if !validName(name) {
			b.errorf(0, "invalid group name %q", name)
			continue
		}
		groups[name] = g
	}
	// Walk from "all" so that host order follows the inventory's structure.
	seen := map[string]bool{}
	var walk func(string, int)
	walk = func(name string, depth int) {
		if seen[name] || depth > maxDepth {
			return
		}
		seen[name] = true
		g := groups[name]
		b.group(name, 0)
		for k, v := range g.Vars {
			b.groups[name].vars[k] = normalize(v)
		}
		for _, h := range g.Hosts {
			if !b.addHost(name, h, nil, 0) {
				break
			}
		}
		for _, c := range g.Children {
			b.addChild(name, c, 0)
			if validName(c) && c != All {
				walk(c, depth+1)
			}
		}
	}
	walk(All, 0)
	for _, name := range sortedKeys(groups) {
		walk(name, 0)
	}
	for _, name := range sortedKeys(meta.HostVars) {
		if _, ok := b.hosts[name]; !ok && !b.addHost(All, name, nil, 0) {
			break
		}
		for k, v := range meta.HostVars[name] {
			if h, ok := b.hosts[name]; ok {
				h.vars[k] = normalize(v)
			}
		}
	}
	return b.resolve()
}

func unmarshal(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}
