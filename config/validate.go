package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// ListenAddr is one parsed entry of sip.listen.
type ListenAddr struct {
	Network string // udp, tcp
	Addr    string // HOST:PORT
}

// ParseListen parses a sip.listen entry such as udp://0.0.0.0:5060.
func ParseListen(s string) (ListenAddr, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return ListenAddr{}, fmt.Errorf("%q: want SCHEME://HOST:PORT (udp or tcp)", s)
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "udp", "tcp":
	case "tls", "ws", "wss":
		return ListenAddr{}, fmt.Errorf("%q: transport %s is not supported yet (udp, tcp)", s, scheme)
	default:
		return ListenAddr{}, fmt.Errorf("%q: unknown transport %q (udp, tcp)", s, scheme)
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return ListenAddr{}, fmt.Errorf("%q: %v", s, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return ListenAddr{}, fmt.Errorf("%q: bad port %q", s, port)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return ListenAddr{}, fmt.Errorf("%q: host must be an IP address", s)
		}
	}
	return ListenAddr{Network: scheme, Addr: rest}, nil
}

// ParsePortRange parses "LOW-HIGH".
func ParsePortRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want LOW-HIGH, e.g. 20000-29999", s)
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, fmt.Errorf("%q: ports must be numbers", s)
	case lo < 1024 || hi > 65535:
		return 0, 0, fmt.Errorf("%q: ports must lie in 1024-65535", s)
	case hi-lo < 3:
		return 0, 0, fmt.Errorf("%q: range must hold at least two even/odd pairs", s)
	}
	return lo, hi, nil
}

func (c *Config) validate() Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be a positive duration, e.g. 30s")
		}
	}

	if c.Node == "" || strings.ContainsAny(c.Node, " /\\\t\n") {
		bad("node", "must be a non-empty name without spaces or slashes")
	}
	if len(c.SIP.Listen) == 0 {
		bad("sip.listen", "at least one listener is required")
	}
	for i, l := range c.SIP.Listen {
		if _, err := ParseListen(l); err != nil {
			bad(fmt.Sprintf("sip.listen[%d]", i), "%v", err)
		}
	}
	if h := c.SIP.ExternalHost; h == "" {
		bad("sip.external_host", "required: the address peers reach Blackbox at")
	} else if _, err := netip.ParseAddr(h); err != nil {
		bad("sip.external_host", "%q must be an IP address (it is written into SDP c= lines)", h)
	} else if a, _ := netip.ParseAddr(h); a.IsUnspecified() {
		bad("sip.external_host", "%q is unspecified; peers cannot send to it", h)
	}
	if c.SIP.Realm == "" || strings.ContainsAny(c.SIP.Realm, "\"\\\r\n") {
		bad("sip.realm", "must be a non-empty token without quotes")
	}
	if len(c.SIP.DigestAlgorithms) == 0 {
		bad("sip.digest_algorithms", "at least one of MD5, SHA-256")
	}
	seen := map[string]bool{}
	for i, a := range c.SIP.DigestAlgorithms {
		switch a {
		case "MD5", "SHA-256":
		default:
			bad(fmt.Sprintf("sip.digest_algorithms[%d]", i), "%q: want MD5 or SHA-256", a)
		}
		if seen[a] {
			bad(fmt.Sprintf("sip.digest_algorithms[%d]", i), "%q listed twice", a)
		}
		seen[a] = true
	}
	positive("sip.nonce_ttl", c.SIP.NonceTTL)
	positive("sip.ring_timeout", c.SIP.RingTimeout)
	positive("sip.trunk_timeout", c.SIP.TrunkTimeout)
	if c.SIP.MaxCalls <= 0 {
		bad("sip.max_calls", "must be positive")
	}
	r := c.SIP.Register
	if r.MinExpires < 1 {
		bad("sip.register.min_expires", "must be at least 1 second")
	}
	if r.MaxExpires < r.MinExpires {
		bad("sip.register.max_expires", "must not be below min_expires (%d)", r.MinExpires)
	}
	if r.DefaultExpires < r.MinExpires || r.DefaultExpires > r.MaxExpires {
		bad("sip.register.default_expires", "must lie within min_expires..max_expires (%d..%d)", r.MinExpires, r.MaxExpires)
	}
	if r.MaxContacts < 1 {
		bad("sip.register.max_contacts", "must be at least 1")
	}
	positive("sip.register.sweep_interval", r.SweepInterval)

	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", "%q: want HOST:PORT", c.HTTP.Listen)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		bad("http.tls_cert", "tls_cert and tls_key must be set together")
	}

	if lo, hi, err := ParsePortRange(c.Media.RTPPorts); err != nil {
		bad("media.rtp_ports", "%v", err)
	} else {
		c.Media.PortMin, c.Media.PortMax = lo, hi
	}
	positive("media.rtp_timeout", c.Media.RTPTimeout)
	if _, err := netip.ParseAddr(c.Media.Bind); err != nil {
		bad("media.bind", "%q must be an IP address", c.Media.Bind)
	}

	if err := checkDSN(c.Store.DSN); err != nil {
		bad("store.dsn", "%v", err)
	}
	if err := checkObjectsURL(c.Objects.URL); err != nil {
		bad("objects.url", "%v", err)
	}
	switch c.Objects.SSE {
	case "", "AES256", "aws:kms":
	default:
		bad("objects.sse", "%q: want AES256 or aws:kms", c.Objects.SSE)
	}

	if c.Recorder.SpoolDir == "" {
		bad("recorder.spool_dir", "required")
	}
	positive("recorder.sync_interval", c.Recorder.SyncInterval)
	if c.Recorder.UploadAttempts < 1 {
		bad("recorder.upload_attempts", "must be at least 1")
	}

	if _, ok := c.Consent.Prompts[c.Consent.Prompt]; !ok {
		bad("consent.prompt", "%q is not one of consent.prompts", c.Consent.Prompt)
	}
	for id, p := range c.Consent.Prompts {
		if p.File == "" {
			bad("consent.prompts."+id+".file", "required")
		}
		if p.Version == "" {
			bad("consent.prompts."+id+".version", "required: a label such as v1")
		}
	}
	if c.Policy.File != "" {
		if _, err := os.Stat(c.Policy.File); err != nil {
			bad("policy.file", "%v", err)
		}
	}
	positive("consent.dtmf_timeout", c.Consent.DTMFTimeout)

	if c.Jobs.Workers < 1 {
		bad("jobs.workers", "must be at least 1")
	}
	if c.Jobs.MaxAttempts < 1 {
		bad("jobs.max_attempts", "must be at least 1")
	}
	positive("jobs.lease", c.Jobs.Lease)
	positive("api.link_ttl", c.API.LinkTTL)
	if c.API.MaxLinkTTL < c.API.LinkTTL {
		bad("api.max_link_ttl", "must not be below api.link_ttl (%s)", c.API.LinkTTL)
	}

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q: want text or json", c.Log.Format)
	}
	if c.Shutdown.Grace < 0 {
		bad("shutdown.grace", "must not be negative")
	}
	return errs
}

func checkDSN(dsn string) error {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		if strings.TrimPrefix(dsn, "sqlite:") == "" {
			return fmt.Errorf("sqlite: needs a path, e.g. sqlite:var/blackbox.db")
		}
		return nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := url.Parse(dsn); err != nil {
			return fmt.Errorf("bad postgres URL: %v", err)
		}
		return nil
	}
	return fmt.Errorf("want sqlite:PATH or postgres://...")
}

func checkObjectsURL(s string) error {
	switch {
	case strings.HasPrefix(s, "file:"):
		if strings.TrimPrefix(s, "file:") == "" {
			return fmt.Errorf("file: needs a directory, e.g. file:var/recordings")
		}
		return nil
	case strings.HasPrefix(s, "s3://"):
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("bad s3 URL: %v", err)
		}
		if u.Host == "" {
			return fmt.Errorf("s3 URL needs a bucket: s3://BUCKET?endpoint=URL&region=R")
		}
		return nil
	}
	return fmt.Errorf("want file:DIR or s3://BUCKET?endpoint=URL&region=R&path_style=true")
}
