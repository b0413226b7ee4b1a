package inventory

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Select returns the hosts that pattern selects, in inventory order. The
// grammar is Ansible's --limit:
//
//	web:db        union: hosts in web or db
//	web:&prod     intersection: hosts in web that are also in prod
//	web:!web03    exclusion: hosts in web except web03
//	web*.example.com, db[12]   shell globs over host and group names
//	~web\d+       a regular expression over host and group names
//	all, *, ""    every host
//
// Terms are separated by ':' or, when the pattern contains a comma, by ','.
// Unions are taken first, then intersections, then exclusions; a pattern
// made only of intersections and exclusions starts from every host. A term
// that matches nothing is an error wrapping ErrNoMatch, as is an empty
// result.
func (inv *Inventory) Select(pattern string) ([]Host, error) {
	pattern = strings.TrimSpace(pattern)
	if pattern == "" || pattern == All || pattern == "*" {
		return inv.Hosts(), nil
	}
	sep := ":"
	if strings.Contains(pattern, ",") {
		sep = ","
	}
	var union, inter, excl []string
	for _, t := range strings.Split(pattern, sep) {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
		case strings.HasPrefix(t, "&"):
			inter = append(inter, t[1:])
		case strings.HasPrefix(t, "!"):
			excl = append(excl, t[1:])
		default:
			union = append(union, t)
		}
	}
	var errs []error
	match := func(term string) map[string]bool {
		set, err := inv.matchTerm(term)
		if err != nil {
			errs = append(errs, err)
		}
		return set
	}
	selected := map[string]bool{}
	if len(union) == 0 {
		for _, h := range inv.hosts {
			selected[h.Name] = true
		}
	}
	for _, t := range union {
		for n := range match(t) {
			selected[n] = true
		}
	}
	for _, t := range inter {
		set := match(t)
		for n := range selected {
			if !set[n] {
				delete(selected, n)
			}
		}
	}
	for _, t := range excl {
		for n := range match(t) {
			delete(selected, n)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []Host
	for _, h := range inv.hosts {
		if selected[h.Name] {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("inventory: select %q: %w", pattern, ErrNoMatch)
	}
	return out, nil
}

// matchTerm returns the names of the hosts one selector term matches.
func (inv *Inventory) matchTerm(term string) (map[string]bool, error) {
	set := map[string]bool{}
	addGroup := func(g string) {
		for _, h := range inv.hosts {
			for _, hg := range h.Groups {
				if hg == g {
					set[h.Name] = true
				}
			}
		}
	}
	if term == "" {
		return nil, fmt.Errorf("inventory: empty selector term: %w", ErrNoMatch)
	}
	if term == All || term == "*" {
		addGroup(All)
		return set, nil
	}
	if _, ok := inv.groups[term]; ok {
		addGroup(term)
	}
	if _, ok := inv.byName[term]; ok {
		set[term] = true
	}
	if len(set) > 0 {
		return set, nil
	}
	var matches func(string) bool
	switch {
	case strings.HasPrefix(term, "~"):
		re, err := regexp.Compile(term[1:])
		if err != nil {
			return nil, fmt.Errorf("inventory: selector %q: %w", term, err)
		}
		matches = re.MatchString
	case strings.ContainsAny(term, "*?["):
		if _, err := path.Match(term, ""); err != nil {
			return nil, fmt.Errorf("inventory: selector %q: %w", term, err)
		}
		matches = func(s string) bool { ok, _ := path.Match(term, s); return ok }
	default:
		return nil, fmt.Errorf("inventory: selector %q: %w", term, ErrNoMatch)
	}
	for g := range inv.groups {
		if matches(g) {
			addGroup(g)
		}
	}
	for _, h := range inv.hosts {
		if matches(h.Name) {
			set[h.Name] = true
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("inventory: selector %q: %w", term, ErrNoMatch)
	}
	return set, nil
}
