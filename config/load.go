package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a configuration file, located by key and line.
type Error struct {
	File   string
	Line   int
	Column int
	Key    string // dotted path, e.g. sip.listen[1]
	Msg    string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
	}
	if loc == "" {
		loc = "config"
	}
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Msg)
}

// Errors is every problem found in one file; Load reports them all at once.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

type position struct{ line, col int }

// Load reads path over the defaults, applies environment overrides and
// validates. An empty path means the defaults alone.
func Load(path string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
	}
	return parse(path, data, true)
}

// Parse is Load for in-memory YAML, without environment overrides (tests).
func Parse(name string, data []byte) (*Config, error) {
	return parse(name, data, false)
}

func parse(name string, data []byte, env bool) (*Config, error) {
	cfg := Default()
	cfg.source = name
	positions := map[string]position{}
	if err := decode(name, data, &cfg, positions); err != nil {
		return nil, err
	}
	if env {
		applyEnv(&cfg)
	}
	if errs := cfg.validate(); len(errs) > 0 {
		for _, e := range errs {
			e.File = name
			if p, ok := lookup(positions, e.Key); ok {
				e.Line, e.Column = p.line, p.col
			}
		}
		return nil, errs
	}
	return &cfg, nil
}

// lookup finds the position of key or of its nearest ancestor, so an error
// about a missing child still points at the section it belongs in.
func lookup(positions map[string]position, key string) (position, bool) {
	for key != "" {
		if p, ok := positions[key]; ok {
			return p, true
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return position{}, false
}

func decode(name string, data []byte, cfg *Config, positions map[string]position) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return &Error{File: name, Line: yamlErrLine(err), Msg: cleanYAMLError(err)}
	}
	if len(doc.Content) == 0 { // empty file: defaults
		return nil
	}
	var errs Errors
	walk(doc.Content[0], reflect.TypeOf(*cfg), "", positions, &errs)
	if len(errs) > 0 {
		for _, e := range errs {
			e.File = name
		}
		return errs
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		line := yamlErrLine(err)
		e := &Error{File: name, Line: line, Msg: cleanYAMLError(err)}
		// Name the key that sits on that line, so the message says what to fix.
		for k, p := range positions {
			if p.line == line && (e.Key == "" || len(k) > len(e.Key)) {
				e.Key, e.Column = k, p.col
			}
		}
		return e
	}
	return nil
}

// walk records the position of every key and reports keys the struct does
// not have, before decoding, so the message can name the full path.
func walk(n *yaml.Node, t reflect.Type, path string, positions map[string]position, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Struct:
			fields := yamlFields(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				key := join(path, k.Value)
				positions[key] = position{k.Line, k.Column}
				f, ok := fields[k.Value]
				if !ok {
					*errs = append(*errs, &Error{Line: k.Line, Column: k.Column, Key: key,
						Msg: "unknown key" + suggest(k.Value, fields)})
					continue
				}
				walk(v, f.Type, key, positions, errs)
			}
		case reflect.Map:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				key := join(path, k.Value)
				positions[key] = position{k.Line, k.Column}
				walk(v, t.Elem(), key, positions, errs)
			}
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice {
			for i, item := range n.Content {
				key := fmt.Sprintf("%s[%d]", path, i)
				positions[key] = position{item.Line, item.Column}
				walk(item, t.Elem(), key, positions, errs)
			}
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		out[tag] = f
	}
	return out
}

func suggest(key string, fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return " (known: " + strings.Join(names, ", ") + ")"
}

var lineRe = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func cleanYAMLError(err error) string {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = lineRe.ReplaceAllString(msg, "")
	msg = strings.TrimLeft(msg, ": ")
	msg = strings.ReplaceAll(msg, "time.Duration", "duration (e.g. 30s)")
	return msg
}

// applyEnv lets secrets stay out of files.
func applyEnv(cfg *Config) {
	if v := os.Getenv("BLACKBOX_STORE_DSN"); v != "" {
		cfg.Store.DSN = v
	}
}
