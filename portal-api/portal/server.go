package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mimamori/mimamori/infra/admin"
)

// MaxBody is the largest request body the portal reads: every body it
// takes is a small JSON object. A larger one is refused with 413
// request_too_large before it is read.
const MaxBody = 64 << 10

// ServerConfig sets the timeouts of the portal's HTTP server; zero values
// take the defaults, which hold on an internet-facing listener.
type ServerConfig struct {
	ReadHeaderTimeout time.Duration // the request line and headers: 10 s
	ReadTimeout       time.Duration // the whole request, body included: 30 s
	WriteTimeout      time.Duration // from the end of the headers to the end of the answer: 60 s
	IdleTimeout       time.Duration // a kept-alive connection without a request: 120 s
}

// HTTPServer is the server the portal's handler runs in: a client that
// sends its headers or body slowly, or keeps a connection open without
// using it, is cut off instead of holding a connection forever.
func HTTPServer(h http.Handler, cfg ServerConfig, logger *slog.Logger) *http.Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ReadHeaderTimeout, 10*time.Second)
	def(&cfg.ReadTimeout, 30*time.Second)
	def(&cfg.WriteTimeout, 60*time.Second)
	def(&cfg.IdleTimeout, 120*time.Second)
	return &http.Server{Handler: h, ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
}

// Serve runs the portal's handler on ln (HTTPServer) until ctx ends, then
// shuts down gracefully, letting requests in flight finish for up to 10
// seconds.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, cfg ServerConfig, logger *slog.Logger) error {
	return admin.RunServer(ctx, ln, HTTPServer(h, cfg, logger))
}

// recovery answers a panic with 500 unavailable and logs it with the
// method, the path (never the query, which may carry a token of an old
// reset link) and the stack. gin's own recovery prints the request with
// its headers, session cookie included, in debug mode and, in any mode,
// for a panic with a broken connection's error (which a ClickHouse driver
// may raise as well as a client). http.ErrAbortHandler goes on to net/http,
// which aborts the answer without a word, as it is meant to.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			log.Error("portal: panic serving a request", "method", c.Request.Method, "path", c.Request.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			writeAPIError(c, http.StatusInternalServerError, "unavailable")
		}()
		c.Next()
	}
}

// headers sets what every answer carries: nosniff everywhere, no-store on
// the API (answers are per session, and a shared cache must never keep
// one), and HSTS on HTTPS: a TLS connection, or a trusted proxy saying it
// received the request over TLS (X-Forwarded-Proto: https).
func headers(trusted []netip.Prefix) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if strings.HasPrefix(c.Request.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
		}
		if c.Request.TLS != nil || (fromProxy(c.Request, trusted) && forwardedHTTPS(c.Request)) {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		c.Next()
	}
}

// fromProxy tells whether the peer of r is one of the trusted proxies.
func fromProxy(r *http.Request, trusted []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range trusted {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// forwardedHTTPS reads the first X-Forwarded-Proto: the scheme the client
// used with the first proxy.
func forwardedHTTPS(r *http.Request) bool {
	first, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(first), "https")
}

// limitBody refuses a body announced larger than MaxBody at once, and cuts
// off one that turns out larger while it is read (bind answers 413 then).
func limitBody(c *gin.Context) {
	if c.Request.ContentLength > MaxBody {
		writeAPIError(c, http.StatusRequestEntityTooLarge, "request_too_large")
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBody)
	c.Next()
}

// tooLarge tells whether a body could not be read because it is larger
// than MaxBody.
func tooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}
