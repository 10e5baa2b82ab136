package engine

import (
	"sort"
	"strings"
)

// router maps topics to the script files that serve them. It is immutable:
// a reload builds a new router and swaps it in, so lookups take no lock.
type router struct {
	exact    map[string]*scriptFile
	prefixes []prefixRoute // longest prefix first
}

type prefixRoute struct {
	prefix string
	file   *scriptFile
}

// isPrefix reports whether pattern is a prefix pattern ("rooms:*").
func isPrefix(pattern string) bool { return strings.HasSuffix(pattern, "*") }

// claim is a script file's claim on a topic pattern.
type claim struct {
	pattern string
	file    *scriptFile
}

// newRouter builds a router from claims. A pattern claimed by two files stays
// with the first by file name; the other claims are returned as conflicts.
func newRouter(claims []claim) (*router, []claim) {
	sorted := append([]claim(nil), claims...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].file.name < sorted[j].file.name })

	r := &router{exact: make(map[string]*scriptFile)}
	taken := make(map[string]bool)
	var conflicts []claim
	for _, c := range sorted {
		if taken[c.pattern] {
			conflicts = append(conflicts, c)
			continue
		}
		taken[c.pattern] = true
		if isPrefix(c.pattern) {
			r.prefixes = append(r.prefixes, prefixRoute{strings.TrimSuffix(c.pattern, "*"), c.file})
		} else {
			r.exact[c.pattern] = c.file
		}
	}
	sort.SliceStable(r.prefixes, func(i, j int) bool {
		return len(r.prefixes[i].prefix) > len(r.prefixes[j].prefix)
	})
	return r, conflicts
}

// owner returns the file that holds pattern, or nil.
func (r *router) owner(pattern string) *scriptFile {
	if !isPrefix(pattern) {
		return r.exact[pattern]
	}
	for _, p := range r.prefixes {
		if p.prefix+"*" == pattern {
			return p.file
		}
	}
	return nil
}

// route returns the file whose pattern most specifically matches topic: an
// exact pattern beats any prefix, and a longer prefix beats a shorter one.
func (r *router) route(topic string) *scriptFile {
	if f, ok := r.exact[topic]; ok {
		return f
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(topic, p.prefix) {
			return p.file
		}
	}
	return nil
}

// owners returns the file that holds each pattern.
func (r *router) owners() map[string]*scriptFile {
	out := make(map[string]*scriptFile, len(r.exact)+len(r.prefixes))
	for pattern, f := range r.exact {
		out[pattern] = f
	}
	for _, p := range r.prefixes {
		out[p.prefix+"*"] = p.file
	}
	return out
}
