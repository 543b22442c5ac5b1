package handlers

import "net/http"

// Placeholders until the token endpoint is built; the file is deleted
// when token.go and userinfo.go exist.

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request)    { s.notImplemented(w, r) }
func (s *Server) serveUserinfo(w http.ResponseWriter, r *http.Request) { s.notImplemented(w, r) }
