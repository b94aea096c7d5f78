package api

import (
	_ "embed"
)

// openAPIDoc describes every route of the table; the tests hold the two to
// each other.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openAPI(q *req) error {
	q.w.Header().Set("Content-Type", "application/json")
	q.w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := q.w.Write(openAPIDoc)
	return err
}
