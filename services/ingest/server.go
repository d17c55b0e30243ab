package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves a handler over HTTPS on a listener.
type Server struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
	// ShutdownTimeout bounds how long in-flight requests may take to
	// finish once Run's context ends (default 30 s, enough for a publish).
	ShutdownTimeout time.Duration
}

// NewServer prepares a server; tlsCfg is required (see tlsca.ServerTLS).
func NewServer(ln net.Listener, tlsCfg *tls.Config, h http.Handler, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var cfg *tls.Config
	if tlsCfg != nil {
		cfg = tlsCfg.Clone()
	}
	return &Server{
		ln:  ln,
		log: logger,
		srv: &http.Server{
			Handler:           h,
			TLSConfig:         cfg,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			// Handshake failures from scanners are routine: debug level.
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		},
		ShutdownTimeout: 30 * time.Second,
	}
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then stops accepting connections and waits
// for the requests in flight to finish (at most ShutdownTimeout).
func (s *Server) Run(ctx context.Context) error {
	if s.srv.TLSConfig == nil {
		return errors.New("ingest: no TLS configuration")
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.ServeTLS(s.ln, "", "") }()
	s.log.Info("ingest gateway listening", "addr", s.ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("ingest: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.ShutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if err != nil {
		s.srv.Close()
		err = fmt.Errorf("ingest: shutdown: %w", err)
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("ingest: serve: %w", serr)
	}
	return err
}
