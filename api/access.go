package api

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/blackbox-gw/blackbox/store"
)

// listAccess lists listening sessions, per user (?user=), call (?call=) or
// recording (?recording=).
func (s *Server) listAccess(q *req) error {
	cursor, limit, err := q.page()
	if err != nil {
		return err
	}
	userID, err := q.userParam()
	if err != nil {
		return err
	}
	v := q.r.URL.Query()
	return s.writeAccess(q, store.AccessFilter{UserID: userID, CallID: v.Get("call"), RecordingID: v.Get("recording"), Before: cursor, Limit: limit})
}

// callAccess lists the listening sessions of one call.
func (s *Server) callAccess(q *req) error {
	cursor, limit, err := q.page()
	if err != nil {
		return err
	}
	id := q.r.PathValue("id")
	if err := q.knownCall(id); err != nil {
		return err
	}
	return s.writeAccess(q, store.AccessFilter{CallID: id, Before: cursor, Limit: limit})
}

func (s *Server) writeAccess(q *req, f store.AccessFilter) error {
	entries, err := q.sc.AccessLog(q.r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(q.w, http.StatusOK, newList(entries, f.Limit, viewAccess, accessID))
}

func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *Server) fromTrustedProxy(r *http.Request) bool { return s.trusted(peerAddr(r)) }

// clientAddr is the address the access log records: the TCP peer, or when
// that is a trusted proxy, the nearest address in X-Forwarded-For that is
// not one (the ones further left are the client's to invent).
func (s *Server) clientAddr(r *http.Request) string {
	peer := peerAddr(r)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if !s.trusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a.String()
		}
	}
	return peer.String()
}
