package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds a policy file; anything larger is refused unread.
const MaxFileSize = 4 << 20

// Error is one problem in a policy file, located by line, column and field
// path, so `blackbox policy check` can point an admin at it.
type Error struct {
	File   string
	Line   int
	Column int
	Path   string // e.g. tenants.acme.rate_limits.user.calls_per_minute
	Msg    string
}

func (e *Error) Error() string {
	loc := e.File
	if loc == "" {
		loc = "policy"
	}
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", loc, e.Line, e.Column)
	}
	if e.Path == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Path + ": " + e.Msg
}

// Errors is every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// decoder walks a yaml.Node tree and collects every error instead of
// stopping at the first, so one check run lists all of them.
type decoder struct {
	file string
	errs Errors
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	e := &Error{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// sorted orders errors by position so output reads top to bottom.
func (d *decoder) sorted() Errors {
	sort.SliceStable(d.errs, func(i, j int) bool {
		a, b := d.errs[i], d.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return d.errs
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): `)

// parseYAML reads exactly one YAML document into a node tree.
func (d *decoder) parseYAML(data []byte) (*yaml.Node, bool) {
	if len(data) > MaxFileSize {
		d.errorf(nil, "", "file is %d bytes; the limit is %d", len(data), MaxFileSize)
		return nil, false
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // empty file
			return nil, true
		}
		d.yamlError(err)
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			d.yamlError(err)
		} else {
			d.errorf(&extra, "", "a policy file holds one YAML document; remove the second one")
		}
		return nil, false
	}
	if len(doc.Content) == 0 {
		return nil, true
	}
	return doc.Content[0], true
}

func (d *decoder) yamlError(err error) {
	msg := err.Error()
	e := &Error{File: d.file, Msg: strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Column = 1
		e.Msg = msg[len(m[0]):]
	}
	d.errs = append(d.errs, e)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

// field handles the value of one known key.
type field func(v *yaml.Node, path string)

// fields walks a mapping, dispatching known keys and reporting unknown,
// duplicate and aliased ones. hints give a specific message for keys that
// are deliberately absent (recording.enabled, emergency).
func (d *decoder) fields(n *yaml.Node, path string, known map[string]field, hints map[string]string) {
	if !d.isKind(n, path, yaml.MappingNode) {
		return
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be plain names")
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.errorf(k, key, "defined twice (first at line %d)", prev.Line)
			continue
		}
		seen[k.Value] = k
		if v.Kind == yaml.AliasNode || v.Anchor != "" || k.Value == "<<" {
			d.errorf(k, key, "YAML anchors, aliases and merge keys are not supported in policy files; use defaults instead")
			continue
		}
		h, ok := known[k.Value]
		if !ok {
			if hint, ok := hints[k.Value]; ok {
				d.errorf(k, key, "%s", hint)
				continue
			}
			names := make([]string, 0, len(known))
			for name := range known {
				names = append(names, name)
			}
			sort.Strings(names)
			d.errorf(k, key, "unknown field (known: %s)", strings.Join(names, ", "))
			continue
		}
		h(v, key)
	}
}

func (d *decoder) isKind(n *yaml.Node, path string, want yaml.Kind) bool {
	if n.Kind == want {
		return true
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.errorf(n, path, "YAML anchors and aliases are not supported in policy files")
		return false
	}
	switch want {
	case yaml.MappingNode:
		d.errorf(n, path, "want a mapping of fields, got %s", kindName(n))
	case yaml.SequenceNode:
		d.errorf(n, path, "want a list, got %s", kindName(n))
	default:
		d.errorf(n, path, "want a single value, got %s", kindName(n))
	}
	return false
}

func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if !d.isKind(n, path, yaml.ScalarNode) {
		return "", false
	}
	if n.Tag == "!!null" {
		d.errorf(n, path, "missing value")
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	s, ok := d.scalar(n, path)
	if ok && strings.TrimSpace(s) == "" {
		d.errorf(n, path, "must not be empty")
		return "", false
	}
	return strings.TrimSpace(s), ok
}

// oneOf accepts one of a closed set of words.
func (d *decoder) oneOf(n *yaml.Node, path string, allowed ...string) (string, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	d.errorf(n, path, "%q is not one of %s", s, strings.Join(allowed, ", "))
	return "", false
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return false, false
	}
	if n.Tag != "!!bool" {
		d.errorf(n, path, "want true or false, got %q", s)
		return false, false
	}
	b, err := strconv.ParseBool(strings.ToLower(s))
	if err != nil {
		d.errorf(n, path, "want true or false, got %q", s)
		return false, false
	}
	return b, true
}

func (d *decoder) integer(n *yaml.Node, path string, min, max int64) (int64, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0, false
	}
	if n.Tag != "!!int" {
		d.errorf(n, path, "want a whole number, got %q", s)
		return 0, false
	}
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		d.errorf(n, path, "want a whole number, got %q", s)
		return 0, false
	}
	if v < min || v > max {
		switch {
		case v <= 0 && min == 1:
			d.errorf(n, path, "must be at least 1 (leave the field out for no limit), got %d", v)
		case v < 0 && min == 0:
			d.errorf(n, path, "must not be negative, got %d", v)
		default:
			d.errorf(n, path, "must be between %d and %d, got %d", min, max, v)
		}
		return 0, false
	}
	return v, true
}

func (d *decoder) positiveInt(n *yaml.Node, path string) (int, bool) {
	v, ok := d.integer(n, path, 1, 1<<31-1)
	return int(v), ok
}

// duration accepts Go durations (90s, 5m, 1h30m) within [min, max].
func (d *decoder) duration(n *yaml.Node, path string, min, max time.Duration) (time.Duration, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, path, "want a duration such as 90s, 5m or 1h, got %q", s)
		return 0, false
	}
	if v < min || v > max {
		d.errorf(n, path, "must be between %s and %s, got %s", min, max, v)
		return 0, false
	}
	return v, true
}

// list walks a sequence of scalars.
func (d *decoder) list(n *yaml.Node, path string, each func(item *yaml.Node, path, value string)) bool {
	if !d.isKind(n, path, yaml.SequenceNode) {
		return false
	}
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		if s, ok := d.str(item, p); ok {
			each(item, p, s)
		}
	}
	return true
}
