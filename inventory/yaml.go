package inventory

import (
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// LoadYAML parses an inventory in Ansible's YAML shape:
//
//	all:
//	  vars: {ansible_user: root}
//	  hosts:
//	    db1.example.com: {ansible_port: 2222}
//	  children:
//	    web:
//	      hosts:
//	        web[01:20].example.com:
//
// Top-level keys are groups (usually only "all"); each group has optional
// hosts (a mapping of host patterns to host vars), vars and children (a
// mapping of group names to groups). A group may appear several times; its
// definitions are merged. Every problem found is returned, joined.
func LoadYAML(data []byte) (*Inventory, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &SyntaxError{Msg: fmt.Sprintf("yaml: %v", err)}
	}
	b := newBuilder()
	w := &yamlWalker{b: b}
	if doc.Kind == 0 { // empty document: an empty inventory
		return b.resolve()
	}
	root := w.deref(&doc)
	if root != nil && root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = w.deref(root.Content[0])
	}
	switch {
	case root == nil:
	case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
	case root.Kind != yaml.MappingNode:
		b.errorf(root.Line, "the top level must be a mapping of group names")
	default:
		w.eachPair(root, func(k, v *yaml.Node) {
			w.group(k.Value, v, k.Line, 0)
		})
	}
	if w.tooLarge {
		return nil, errors.Join(append(b.errs, fmt.Errorf("inventory: %w: more than %d YAML nodes", ErrTooLarge, maxNodes))...)
	}
	return b.resolve()
}

type yamlWalker struct {
	b        *builder
	nodes    int
	tooLarge bool
}

// deref follows an alias and counts the node against maxNodes.
func (w *yamlWalker) deref(n *yaml.Node) *yaml.Node {
	w.nodes++
	if w.nodes > maxNodes {
		w.tooLarge = true
		return nil
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
		if n == nil || n.Kind == yaml.AliasNode {
			return nil
		}
	}
	return n
}

// eachPair calls f for every key/value pair of mapping m whose key is a
// string scalar, reporting other keys.
func (w *yamlWalker) eachPair(m *yaml.Node, f func(k, v *yaml.Node)) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := w.deref(m.Content[i]), w.deref(m.Content[i+1])
		if k == nil || v == nil {
			return
		}
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			w.b.errorf(k.Line, "keys must be plain names")
			continue
		}
		f(k, v)
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// group reads the body of group name.
func (w *yamlWalker) group(name string, n *yaml.Node, line, depth int) {
	b := w.b
	if !validName(name) {
		b.errorf(line, "invalid group name %q", name)
		return
	}
	if depth > maxDepth {
		b.errs = append(b.errs, fmt.Errorf("inventory: line %d: %w: groups nested deeper than %d", line, ErrTooLarge, maxDepth))
		return
	}
	b.group(name, line)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		b.errorf(n.Line, "group %q: want a mapping with hosts, vars or children", name)
		return
	}
	w.eachPair(n, func(k, v *yaml.Node) {
		switch k.Value {
		case "hosts":
			if isNull(v) {
				return
			}
			if v.Kind != yaml.MappingNode {
				b.errorf(v.Line, "group %q: hosts must be a mapping of host names (a list is not allowed)", name)
				return
			}
			w.eachPair(v, func(hk, hv *yaml.Node) {
				vars, ok := w.vars(hv, fmt.Sprintf("host %q", hk.Value))
				if ok {
					b.addHosts(name, hk.Value, vars, hk.Line)
				}
			})
		case "vars":
			vars, ok := w.vars(v, fmt.Sprintf("group %q: vars", name))
			if ok {
				for key, val := range vars {
					b.groups[name].vars[key] = val
				}
			}
		case "children":
			if isNull(v) {
				return
			}
			if v.Kind != yaml.MappingNode {
				b.errorf(v.Line, "group %q: children must be a mapping of group names", name)
				return
			}
			w.eachPair(v, func(ck, cv *yaml.Node) {
				b.addChild(name, ck.Value, ck.Line)
				if validName(ck.Value) && ck.Value != All {
					w.group(ck.Value, cv, ck.Line, depth+1)
				}
			})
		default:
			b.errorf(k.Line, "group %q: unexpected key %q (want hosts, vars or children)", name, k.Value)
		}
	})
}

// vars decodes a mapping of variables (null is an empty mapping).
func (w *yamlWalker) vars(n *yaml.Node, what string) (map[string]any, bool) {
	if isNull(n) {
		return map[string]any{}, true
	}
	if n.Kind != yaml.MappingNode {
		w.b.errorf(n.Line, "%s: want a mapping of variables", what)
		return nil, false
	}
	out := map[string]any{}
	ok := true
	w.eachPair(n, func(k, v *yaml.Node) {
		var val any
		if err := v.Decode(&val); err != nil {
			w.b.errorf(v.Line, "%s: variable %q: %v", what, k.Value, err)
			ok = false
			return
		}
		out[k.Value] = normalize(val)
	})
	return out, ok
}
