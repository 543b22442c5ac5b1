package handlers

import "net/http"

// Placeholders until the user-facing flow is built; the file is deleted
// when authorize.go, login.go, consent.go, picker.go, launch.go,
// launcher.go and pages.go exist.

type pages struct{}

func loadPages(string) (*pages, error) { return &pages{}, nil }

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) { s.notImplemented(w, r) }
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request)     { s.notImplemented(w, r) }
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request)    { s.notImplemented(w, r) }
func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request)   { s.notImplemented(w, r) }
func (s *Server) servePicker(w http.ResponseWriter, r *http.Request)    { s.notImplemented(w, r) }
func (s *Server) serveLaunch(w http.ResponseWriter, r *http.Request)    { s.notImplemented(w, r) }
func (s *Server) serveLauncher(w http.ResponseWriter, r *http.Request)  { s.notImplemented(w, r) }
