// Package config holds Blackbox's one typed configuration: loaded from YAML,
// validated up front, with every error naming the key and the line it came from.
package config

import (
	"os"
	"time"
)

// Config is the whole configuration of one `blackbox serve` process.
// Every field has a default (see Default); a YAML file only overrides.
type Config struct {
	SIP      SIP      `yaml:"sip"`
	HTTP     HTTP     `yaml:"http"`
	Media    Media    `yaml:"media"`
	Store    Store    `yaml:"store"`
	Objects  Objects  `yaml:"objects"`
	Secrets  Secrets  `yaml:"secrets"`
	Recorder Recorder `yaml:"recorder"`
	Consent  Consent  `yaml:"consent"`
	Policy   Policy   `yaml:"policy"`
	Jobs     Jobs     `yaml:"jobs"`
	API      API      `yaml:"api"`
	Log      Log      `yaml:"log"`
	Shutdown Shutdown `yaml:"shutdown"`
	// Node names this process among several sharing one database; it must be
	// stable across restarts (its spool and registrations are its own).
	// Default: the host name.
	Node string `yaml:"node"`
	// Dev marks the embedded developer default: a missing Fernet key is
	// generated under ./var (loudly) and a demo tenant is seeded on first start.
	Dev bool `yaml:"dev"`

	// source is the file the config was read from, for messages.
	source string
}

// SIP configures signalling.
type SIP struct {
	// Listen holds transport URLs: udp://HOST:PORT, tcp://HOST:PORT.
	Listen []string `yaml:"listen"`
	// ExternalHost is the address written into Via, Contact and SDP.
	ExternalHost string `yaml:"external_host"`
	// Realm is the digest realm of every challenge. SIP usernames are unique
	// across the gateway, so one realm serves all tenants.
	Realm string `yaml:"realm"`
	// UserAgent is the User-Agent/Server header value.
	UserAgent string `yaml:"user_agent"`
	// DigestAlgorithms are offered in challenges, in order of preference
	// (RFC 8760). Default [MD5]: SIPp 3.6 and baresip 1.x refuse any
	// challenge set that includes SHA-256; list [SHA-256, MD5] where every
	// phone speaks RFC 8760. Both are always accepted in responses to what
	// was offered.
	DigestAlgorithms []string `yaml:"digest_algorithms"`
	// NonceTTL bounds how long a digest nonce is accepted (then stale=true).
	NonceTTL time.Duration `yaml:"nonce_ttl"`
	Register Register      `yaml:"register"`
	// RingTimeout ends an unanswered call with 480/408.
	RingTimeout time.Duration `yaml:"ring_timeout"`
	// TrunkTimeout is how long a trunk may stay silent (no response at all)
	// before the rep gets 503.
	TrunkTimeout time.Duration `yaml:"trunk_timeout"`
	// MaxCalls bounds concurrent calls on this node (503 beyond it).
	MaxCalls int `yaml:"max_calls"`
}

// Register bounds registration lifetimes.
type Register struct {
	MinExpires     int           `yaml:"min_expires"`
	MaxExpires     int           `yaml:"max_expires"`
	DefaultExpires int           `yaml:"default_expires"`
	MaxContacts    int           `yaml:"max_contacts"`
	SweepInterval  time.Duration `yaml:"sweep_interval"`
}

// HTTP configures the operations/API listener.
type HTTP struct {
	// Listen is HOST:PORT serving /healthz, /readyz, /metrics (and /v1 later).
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey enable HTTPS when both are set.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// Media configures RTP anchoring.
type Media struct {
	// RTPPorts is an inclusive range "LOW-HIGH"; each call leg takes an even/odd pair.
	RTPPorts string `yaml:"rtp_ports"`
	// RTPTimeout hangs a call up when a party sends no media for this long.
	RTPTimeout time.Duration `yaml:"rtp_timeout"`
	// Bind is the local address RTP sockets bind to (default: all).
	Bind string `yaml:"bind"`

	// Parsed from RTPPorts by Validate.
	PortMin int `yaml:"-"`
	PortMax int `yaml:"-"`
}

// Store configures the metadata database.
type Store struct {
	// DSN is sqlite:PATH or postgres://... (env BLACKBOX_STORE_DSN overrides).
	DSN string `yaml:"dsn"`
}

// Objects configures recording object storage.
type Objects struct {
	// URL is file:DIR or s3://BUCKET?endpoint=URL&region=R&path_style=true.
	URL string `yaml:"url"`
	// SSE requests server-side encryption on S3 ("", "AES256", "aws:kms").
	SSE string `yaml:"sse"`
	// SSEKMSKeyID names the KMS key when SSE is aws:kms.
	SSEKMSKeyID string `yaml:"sse_kms_key_id"`
}

// Secrets configures Fernet encryption of secrets at rest.
type Secrets struct {
	// KeyFile holds one or more base64 Fernet keys, one per line, newest first.
	// BLACKBOX_FERNET_KEYS (comma separated) takes precedence.
	KeyFile string `yaml:"key_file"`
}

// Recorder configures the streaming recorder.
type Recorder struct {
	// SpoolDir holds in-progress recordings until they are uploaded.
	SpoolDir string `yaml:"spool_dir"`
	// SyncInterval bounds how much audio a crash can lose.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// UploadAttempts dead-letters an upload after this many failures.
	UploadAttempts int `yaml:"upload_attempts"`
}

// Consent configures the announcement played before a call is bridged.
type Consent struct {
	// Prompts maps a prompt id to its audio file and version label.
	Prompts map[string]Prompt `yaml:"prompts"`
	// Prompt is the id of the announcement played.
	Prompt string `yaml:"prompt"`
	// DTMFTimeout is how long announce_dtmf (chosen by the policy's consent
	// section, per tenant and territory) waits for the party's digit.
	DTMFTimeout time.Duration `yaml:"dtmf_timeout"`
}

// Prompt is one announcement file.
type Prompt struct {
	File    string `yaml:"file"`
	Version string `yaml:"version"`
}

// Policy locates the hot-reloaded policy file ("" = built-in defaults:
// US and CA allowed, premium numbers refused, announce).
type Policy struct {
	File string `yaml:"file"`
}

// Jobs configures durable background work.
type Jobs struct {
	Workers     int           `yaml:"workers"`
	MaxAttempts int           `yaml:"max_attempts"`
	Lease       time.Duration `yaml:"lease"`
}

// API configures the control-plane HTTP API.
type API struct {
	// LinkTTL is the default lifetime of a signed playback link.
	LinkTTL time.Duration `yaml:"link_ttl"`
	// MaxLinkTTL caps what a caller may request. Links are signed with a key
	// derived from the Fernet keyring, so every node agrees on them.
	MaxLinkTTL time.Duration `yaml:"max_link_ttl"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// Shutdown configures draining on SIGTERM.
type Shutdown struct {
	Grace time.Duration `yaml:"grace"`
}

// Source is the path the configuration was loaded from ("" for defaults).
func (c *Config) Source() string { return c.source }

// Default returns a configuration that runs on one machine with no server:
// SQLite and a local recordings folder under ./var.
func Default() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "blackbox"
	}
	return Config{
		Node: host,
		SIP: SIP{
			Listen:           []string{"udp://0.0.0.0:5060", "tcp://0.0.0.0:5060"},
			ExternalHost:     "127.0.0.1",
			Realm:            "blackbox",
			DigestAlgorithms: []string{"MD5"},
			UserAgent:        "Blackbox",
			NonceTTL:         5 * time.Minute,
			Register: Register{
				MinExpires:     60,
				MaxExpires:     3600,
				DefaultExpires: 3600,
				MaxContacts:    10,
				SweepInterval:  10 * time.Second,
			},
			RingTimeout:  90 * time.Second,
			TrunkTimeout: 8 * time.Second,
			MaxCalls:     2000,
		},
		HTTP:  HTTP{Listen: "127.0.0.1:8080"},
		Media: Media{RTPPorts: "20000-29999", RTPTimeout: 30 * time.Second, Bind: "0.0.0.0"},
		Store: Store{DSN: "sqlite:var/blackbox.db"},
		Objects: Objects{
			URL: "file:var/recordings",
		},
		Secrets:  Secrets{KeyFile: "var/fernet.key"},
		Recorder: Recorder{SpoolDir: "var/spool", SyncInterval: time.Second, UploadAttempts: 8},
		Consent: Consent{
			Prompts: map[string]Prompt{
				"consent-en": {File: "configs/prompts/consent-en-v1.wav", Version: "v1"},
			},
			Prompt:      "consent-en",
			DTMFTimeout: 10 * time.Second,
		},
		Policy:   Policy{File: ""},
		Jobs:     Jobs{Workers: 4, MaxAttempts: 8, Lease: time.Minute},
		API:      API{LinkTTL: 5 * time.Minute, MaxLinkTTL: time.Hour},
		Log:      Log{Level: "info", Format: "text"},
		Shutdown: Shutdown{Grace: 30 * time.Second},
	}
}
