package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// metricSample is one line of the Prometheus text format.
type metricSample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// metricSet is a parsed /metrics page. A small parser of our own, because
// the expfmt parser would pull modules the project does not otherwise need.
type metricSet []metricSample

// parseMetrics reads the Prometheus text exposition format (comments and
// timestamps ignored).
func parseMetrics(text string) (metricSet, error) {
	var out metricSet
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseMetricLine(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d %q: %w", n+1, line, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseMetricLine(line string) (metricSample, error) {
	s := metricSample{Labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(line, "{ "); i < 0 {
		return s, fmt.Errorf("no value")
	} else {
		s.Name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, "=\"")
			if eq < 0 {
				return s, fmt.Errorf("bad label set")
			}
			key := strings.TrimSpace(rest[:eq])
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for i := 0; i < len(rest); i++ {
				c := rest[i]
				if c == '\\' && i+1 < len(rest) {
					i++
					switch rest[i] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[i])
					}
					continue
				}
				if c == '"' {
					rest, closed = rest[i+1:], true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return s, fmt.Errorf("unterminated label value")
			}
			s.Labels[key] = val.String()
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("value: %w", err)
	}
	s.Value = v
	return s, nil
}

// Get returns the value of the sample named name whose labels include
// every pair of labels ("k", "v", ...).
func (m metricSet) Get(name string, labels ...string) (float64, bool) {
	for _, s := range m {
		if s.Name == name && s.matches(labels) {
			return s.Value, true
		}
	}
	return 0, false
}

// Sum adds every sample named name whose labels include the given pairs.
func (m metricSet) Sum(name string, labels ...string) float64 {
	var sum float64
	for _, s := range m {
		if s.Name == name && s.matches(labels) {
			sum += s.Value
		}
	}
	return sum
}

// LabelValues lists the distinct values of label across samples of name:
// the tool for asserting a label set stays bounded.
func (m metricSet) LabelValues(name, label string) []string {
	seen := map[string]bool{}
	for _, s := range m {
		if v, ok := s.Labels[label]; ok && s.Name == name {
			seen[v] = true
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func (s metricSample) matches(pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		if s.Labels[pairs[i]] != pairs[i+1] {
			return false
		}
	}
	return true
}
