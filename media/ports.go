package media

import (
	"fmt"
	"sync"
)

// portPool hands out RTP/RTCP port pairs: an even RTP port and the next odd
// port for RTCP. Free pairs sit in a FIFO ring, so a pair just released is the
// last to be handed out again: late packets of an ended call then reach a
// closed port instead of the next call. get and put are O(1); the mutex is
// taken only when sessions start and end, never per packet.
type portPool struct {
	mu    sync.Mutex
	base  int    // RTP port of pair 0 (even)
	ring  []int  // free pair indexes, FIFO
	head  int    // index in ring of the oldest free pair
	free  int    // number of free pairs in ring
	inUse []bool // by pair index
}

func newPortPool(minPort, maxPort int) (*portPool, error) {
	if minPort < 1 || maxPort > 65535 || minPort > maxPort {
		return nil, fmt.Errorf("rtp port range %d-%d: want 1 <= min <= max <= 65535", minPort, maxPort)
	}
	base := minPort + minPort%2
	pairs := 0
	if maxPort >= base+1 {
		pairs = (maxPort - base + 1) / 2
	}
	if pairs == 0 {
		return nil, fmt.Errorf("rtp port range %d-%d holds no even/odd port pair", minPort, maxPort)
	}
	p := &portPool{base: base, ring: make([]int, pairs), free: pairs, inUse: make([]bool, pairs)}
	for i := range p.ring {
		p.ring[i] = i
	}
	return p, nil
}

// get returns the RTP port of a free pair.
func (p *portPool) get() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.free == 0 {
		return 0, false
	}
	i := p.ring[p.head]
	p.head = (p.head + 1) % len(p.ring)
	p.free--
	p.inUse[i] = true
	return p.base + 2*i, true
}

// put returns a pair to the pool. It reports false, and changes nothing,
// for a port that is not the RTP port of a pair in use, so a double release
// can never put a pair in the ring twice.
func (p *portPool) put(port int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	off := port - p.base
	if off < 0 || off%2 != 0 || off/2 >= len(p.inUse) || !p.inUse[off/2] {
		return false
	}
	i := off / 2
	p.inUse[i] = false
	p.ring[(p.head+p.free)%len(p.ring)] = i
	p.free++
	return true
}

func (p *portPool) pairs() int { return len(p.ring) }

// pairsInUse is the number of pairs handed out and not yet returned.
func (p *portPool) pairsInUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ring) - p.free
}
