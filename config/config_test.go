package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/blackbox-gw/blackbox/config"
)

func TestDefaultsValidate(t *testing.T) {
	cfg, err := config.Parse("empty.yaml", nil)
	if err != nil {
		t.Fatalf("defaults must validate: %v", err)
	}
	if cfg.Media.PortMin != 20000 || cfg.Media.PortMax != 29999 {
		t.Fatalf("rtp_ports parsed to %d-%d", cfg.Media.PortMin, cfg.Media.PortMax)
	}
}

func TestErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "sip:\n  listen: [udp://127.0.0.1:5060]\n  external_hots: 1.2.3.4\n", "bad.yaml:3:3: sip.external_hots: unknown key"},
		{"unknown section", "sipp:\n  listen: []\n", "bad.yaml:1:1: sipp: unknown key"},
		{"bad transport", "sip:\n  listen:\n    - udp://127.0.0.1:5060\n    - sctp://1.2.3.4:5\n", "bad.yaml:4:7: sip.listen[1]"},
		{"bad duration", "media:\n  rtp_timeout: soon\n", "bad.yaml:2:3: media.rtp_timeout: cannot unmarshal"},
		{"bad ports", "media:\n  rtp_ports: \"30000-2\"\n", "bad.yaml:2:3: media.rtp_ports"},
		{"bad dsn", "store:\n  dsn: mysql://x\n", "bad.yaml:2:3: store.dsn: want sqlite:PATH"},
		{"bad objects", "objects:\n  url: ftp://x\n", "bad.yaml:2:3: objects.url"},
		{"unspecified host", "sip:\n  external_host: 0.0.0.0\n", "bad.yaml:2:3: sip.external_host"},
		{"expires order", "sip:\n  register:\n    min_expires: 100\n    max_expires: 50\n", "bad.yaml:4:5: sip.register.max_expires"},
		{"bad yaml", "sip: [\n", "bad.yaml:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse("bad.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	_, err := config.Parse("bad.yaml", []byte("media:\n  rtp_ports: nope\nstore:\n  dsn: nope\n"))
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("want two errors, got %v", err)
	}
}

func TestListenParsing(t *testing.T) {
	for in, ok := range map[string]bool{
		"udp://0.0.0.0:5060": true, "tcp://[::1]:5061": true, "TCP://127.0.0.1:0": true,
		"udp://host.example:5060": false, "tls://0.0.0.0:5061": false, "0.0.0.0:5060": false, "udp://0.0.0.0:99999": false,
	} {
		_, err := config.ParseListen(in)
		if (err == nil) != ok {
			t.Errorf("%s: err=%v, want ok=%v", in, err, ok)
		}
	}
}
