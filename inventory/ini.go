package inventory

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// LoadINI parses an inventory in Ansible's INI format:
//
//	mail.example.com                 # before any section: ungrouped
//	[web]
//	web[01:20].example.com
//	web-legacy ansible_host=192.0.2.7 ansible_port=2222
//	[web:vars]
//	http_port=80
//	[prod:children]
//	web
//
// As in Ansible, values on a host line are literals (42 is a number, True a
// boolean, "a b" a string) and values in a :vars section are strings.
// Every problem found is returned, joined.
func LoadINI(data []byte) (*Inventory, error) {
	b := newBuilder()
	group, kind := Ungrouped, "hosts"
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxFileSize)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' || s[0] == ';' {
			continue
		}
		if s[0] == '[' {
			if !strings.HasSuffix(s, "]") {
				b.errorf(line, "section header %q: missing ']'", s)
				continue
			}
			name, suffix, _ := strings.Cut(s[1:len(s)-1], ":")
			name = strings.TrimSpace(name)
			if !validName(name) {
				b.errorf(line, "invalid group name %q", name)
				group, kind = "", ""
				continue
			}
			switch suffix {
			case "":
				kind = "hosts"
			case "vars", "children":
				kind = suffix
			default:
				b.errorf(line, "section [%s:%s]: want [%s], [%s:vars] or [%s:children]", name, suffix, name, name, name)
				group, kind = "", ""
				continue
			}
			group = name
			b.group(group, line)
			continue
		}
		switch kind {
		case "":
			// inside a bad section: already reported
		case "vars":
			k, v, ok := strings.Cut(s, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				b.errorf(line, "group %q: want key=value, not %q", group, s)
				continue
			}
			b.groups[group].vars[k] = unquote(strings.TrimSpace(v))
		case "children":
			if group == All {
				// Ansible allows [all:children]: the groups are children of all anyway.
				b.group(s, line)
				continue
			}
			b.addChild(group, s, line)
		default:
			fields, err := splitFields(s)
			if err != nil {
				b.errorf(line, "%v", err)
				continue
			}
			if len(fields) == 0 {
				continue
			}
			vars := map[string]any{}
			bad := false
			for _, f := range fields[1:] {
				k, v, ok := strings.Cut(f, "=")
				if !ok || k == "" {
					b.errorf(line, "host %q: want key=value after the host name, not %q", fields[0], f)
					bad = true
					continue
				}
				vars[k] = literal(v)
			}
			if !bad {
				b.addHosts(group, fields[0], vars, line)
			}
		}
	}
	if err := sc.Err(); err != nil {
		b.errorf(line+1, "%v", err)
	}
	// Hosts before any section were added to "ungrouped"; resolve puts
	// ungrouped under all.
	return b.resolve()
}

// splitFields splits a host line on blanks, keeping quoted values together
// and dropping a '#' comment.
func splitFields(s string) ([]string, error) {
	var fields []string
	var cur strings.Builder
	in := false // inside a field
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				fields = append(fields, cur.String())
				cur.Reset()
				in = false
			}
		case c == '#' && !in:
			i = len(s)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if in {
		fields = append(fields, cur.String())
	}
	return fields, nil
}

// literal converts a host-line value as Ansible's INI plugin does: numbers,
// booleans and None; anything else stays a string.
func literal(v string) any {
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && strings.ContainsAny(v, ".eE") && !strings.ContainsAny(v, "nN") {
		return f
	}
	switch v {
	case "True", "true":
		return true
	case "False", "false":
		return false
	case "None":
		return nil
	}
	return v
}

// unquote strips one pair of matching quotes around a :vars value.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}
