package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// sipMessage is one message from a SIPp -trace_msg log.
type sipMessage struct {
	Sent      bool // SIPp sent it (false: SIPp received it)
	Transport string
	At        time.Time
	StartLine string
	Headers   []sipHeader
	Body      string
}

type sipHeader struct{ Name, Value string }

// compactHeaders maps RFC 3261 compact forms to full names.
var compactHeaders = map[string]string{
	"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
	"c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via",
}

func canonicalHeader(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if full, ok := compactHeaders[n]; ok {
		return full
	}
	return n
}

// Header returns the first value of a header (case-insensitive, compact
// forms understood), or "".
func (m sipMessage) Header(name string) string {
	want := canonicalHeader(name)
	for _, h := range m.Headers {
		if canonicalHeader(h.Name) == want {
			return h.Value
		}
	}
	return ""
}

// HeaderValues returns every value of a header.
func (m sipMessage) HeaderValues(name string) []string {
	want := canonicalHeader(name)
	var out []string
	for _, h := range m.Headers {
		if canonicalHeader(h.Name) == want {
			out = append(out, h.Value)
		}
	}
	return out
}

// Status is the response code, 0 for a request.
func (m sipMessage) Status() int {
	if !strings.HasPrefix(m.StartLine, "SIP/2.0 ") {
		return 0
	}
	f := strings.Fields(m.StartLine)
	if len(f) < 2 {
		return 0
	}
	code, _ := strconv.Atoi(f[1])
	return code
}

// Method is the request method, or for a response the method of its CSeq.
func (m sipMessage) Method() string {
	if m.Status() == 0 {
		method, _, _ := strings.Cut(m.StartLine, " ")
		return method
	}
	f := strings.Fields(m.Header("CSeq"))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// IsRequest says whether m is a request of method.
func (m sipMessage) IsRequest(method string) bool {
	return m.Status() == 0 && m.Method() == method
}

// IsResponse says whether m is a response with code to a request of method.
func (m sipMessage) IsResponse(code int, method string) bool {
	return m.Status() == code && m.Method() == method
}

// sdpMedia is the audio address an SDP body offers: c= host and m=audio port.
func (m sipMessage) sdpMedia() (host string, port int, ok bool) {
	for _, line := range strings.Split(m.Body, "\n") {
		line = strings.TrimSpace(line)
		if rest, found := strings.CutPrefix(line, "c=IN IP4 "); found {
			host = strings.TrimSpace(rest)
		}
		if rest, found := strings.CutPrefix(line, "m=audio "); found {
			p, err := strconv.Atoi(strings.Fields(rest)[0])
			if err == nil {
				port = p
			}
		}
	}
	return host, port, host != "" && port > 0
}

var sippTraceHead = regexp.MustCompile(`^(UDP|TCP|TLS|SCTP) message (sent|received)`)

// parseSIPpMessages reads SIPp's -trace_msg format: blocks separated by a
// dashed line with a timestamp, a "UDP message sent (N bytes):" line, a
// blank line and the message.
func parseSIPpMessages(log string) []sipMessage {
	var out []sipMessage
	blocks := strings.Split(log, "\n-----------------------------------------------")
	for _, blk := range blocks {
		lines := strings.Split(strings.TrimPrefix(blk, "-----------------------------------------------"), "\n")
		if len(lines) < 3 {
			continue
		}
		var m sipMessage
		stamp := strings.TrimSpace(lines[0])
		if at, err := time.ParseInLocation("2006-01-02 15:04:05.000000", stamp, time.Local); err == nil {
			m.At = at
		}
		head := sippTraceHead.FindStringSubmatch(strings.TrimSpace(lines[1]))
		if head == nil {
			continue
		}
		m.Transport, m.Sent = head[1], head[2] == "sent"
		i := 2
		for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
			i++
		}
		if i >= len(lines) {
			continue
		}
		m.StartLine = strings.TrimSpace(lines[i])
		i++
		for ; i < len(lines); i++ {
			line := strings.TrimRight(lines[i], "\r")
			if line == "" {
				i++
				break
			}
			if (line[0] == ' ' || line[0] == '\t') && len(m.Headers) > 0 { // folded
				m.Headers[len(m.Headers)-1].Value += " " + strings.TrimSpace(line)
				continue
			}
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			m.Headers = append(m.Headers, sipHeader{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
		}
		if i < len(lines) {
			m.Body = strings.TrimRight(strings.ReplaceAll(strings.Join(lines[i:], "\n"), "\r", ""), "\n")
		}
		out = append(out, m)
	}
	return out
}

// finalResponse returns the last response with code >= 200 to method, if any.
func finalResponse(msgs []sipMessage, method string) (sipMessage, bool) {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Status() >= 200 && msgs[i].Method() == method {
			return msgs[i], true
		}
	}
	return sipMessage{}, false
}
