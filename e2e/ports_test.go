package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

// Ports: tests run in parallel with each other and with other packages'
// tests on the same machine, so every listener gets a port that was free a
// moment ago, and a port is never handed out twice in one test process.

var ports struct {
	mu    sync.Mutex
	given map[int]bool
}

func claim(p int) bool { return claimRange(p, p) }

// claimRange marks lo..hi handed out, unless any of them already is.
func claimRange(lo, hi int) bool {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
	}
	for p := lo; p <= hi; p++ {
		if ports.given[p] {
			return false
		}
	}
	for p := lo; p <= hi; p++ {
		ports.given[p] = true
	}
	return true
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1 (SIP
// listens on both with one number).
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if claim(p) {
			return p
		}
	}
	t.Fatal("free port: no port free for both UDP and TCP after 100 tries")
	return 0
}

// freePortPair returns a port p free for UDP and TCP whose next port is
// free too: baresip listens for SIP over TLS on p+1.
func freePortPair(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := freePort(t)
		l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err != nil {
			continue
		}
		l.Close()
		if claim(p + 1) {
			return p
		}
	}
	t.Fatal("free port pair: none after 100 tries")
	return 0
}

// freeUDPPort returns a UDP port free on 127.0.0.1 (SIPp's control port).
func freeUDPPort(t testing.TB) int {
	t.Helper()
	for range 200 {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("free udp port: %v", err)
		}
		p := u.LocalAddr().(*net.UDPAddr).Port
		u.Close()
		if claim(p) {
			return p
		}
	}
	t.Fatal("free udp port: none after 200 tries")
	return 0
}

// rtpPortRange reserves size ports (an even count) for one gateway's media,
// below the kernel's ephemeral range so no ":0" socket lands in it, at an
// offset picked per process so parallel test binaries rarely meet. Every
// port of the block is checked free before it is handed out.
func rtpPortRange(t testing.TB, size int) (lo, hi int) {
	t.Helper()
	size += size % 2
	const base, top = 10000, 32000
	ephemeralLow := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var a, z int
		if _, err := fmt.Sscan(string(b), &a, &z); err == nil && a > base+size {
			ephemeralLow = a
		}
	}
	limit := min(top, ephemeralLow) - size
	blocks := (limit - base) / size
	if blocks <= 0 {
		t.Fatalf("rtp port range: no room below %d", ephemeralLow)
	}
	start := rand.IntN(blocks)
	for i := range blocks {
		b := (start + i) % blocks
		lo = base + b*size
		if !claimRange(lo, lo+size-1) {
			continue
		}
		if udpRangeFree(lo, lo+size-1) {
			return lo, lo + size - 1
		}
	}
	t.Fatal("rtp port range: no free block")
	return 0, 0
}

// sippMediaPort returns an even port for SIPp's -mp: SIPp binds that port
// and the next three (RTCP, and video RTP/RTCP), so all four must be free.
func sippMediaPort(t testing.TB) int {
	t.Helper()
	lo, _ := rtpPortRange(t, 4)
	return lo
}

func udpRangeFree(lo, hi int) bool {
	for p := lo; p <= hi; p++ {
		u, err := net.ListenUDP("udp4", &net.UDPAddr{Port: p})
		if err != nil {
			return false
		}
		u.Close()
	}
	return true
}
