package ingest

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mimamori/mimamori/services/registry"
)

// kind is what went wrong, as far as the client is concerned.
type kind int

const (
	kindInternal         kind = iota // 500
	kindBadRequest                   // 400
	kindUnauthenticated              // 401
	kindForbidden                    // 403
	kindNotFound                     // 404
	kindMethod                       // 405
	kindConflict                     // 409: an alert id stored before with other content
	kindTooLarge                     // 413
	kindUnsupportedMedia             // 415
	kindTooMany                      // 429, try again after retryAfter
	kindUnavailable                  // 503, try again later
)

// apiError is an error with its kind, a message safe to show the client
// (it says what was wrong and where) and the JSON path of the field.
type apiError struct {
	kind  kind
	field string
	msg   string
	cause error // for the log only
	// retryAfter is when a 429 may be sent again.
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.cause }

func errorf(k kind, field, format string, args ...any) *apiError {
	return &apiError{kind: k, field: field, msg: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// writeError is the one place that turns errors into responses.
func (s *server) writeError(c *gin.Context, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, registry.ErrUnauthenticated):
		ae = &apiError{kind: kindUnauthenticated, msg: "invalid credential", cause: err}
	case errors.Is(err, registry.ErrForbidden):
		ae = &apiError{kind: kindForbidden, msg: "device is not assigned to a customer", cause: err}
	default:
		ae = &apiError{kind: kindInternal, msg: "internal error", cause: err}
	}
	status := http.StatusInternalServerError
	switch ae.kind {
	case kindBadRequest:
		status = http.StatusBadRequest
	case kindUnauthenticated:
		status = http.StatusUnauthorized
		if c.GetHeader("Authorization") == "" {
			c.Header("WWW-Authenticate", `Bearer realm="mimamori"`)
		} else {
			c.Header("WWW-Authenticate", `Bearer realm="mimamori", error="invalid_token"`)
		}
	case kindForbidden:
		status = http.StatusForbidden
	case kindNotFound:
		status = http.StatusNotFound
	case kindMethod:
		status = http.StatusMethodNotAllowed
	case kindConflict:
		status = http.StatusConflict
	case kindTooLarge:
		status = http.StatusRequestEntityTooLarge
	case kindUnsupportedMedia:
		status = http.StatusUnsupportedMediaType
	case kindTooMany:
		status = http.StatusTooManyRequests
		c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(ae.retryAfter.Seconds())))))
	case kindUnavailable:
		status = http.StatusServiceUnavailable
		c.Header("Retry-After", "5")
	}
	// The message may quote part of the body; the log gets only the kind,
	// the field and the cause (which never holds a credential's secret).
	if status >= 500 {
		s.log.Warn("request failed", "path", c.FullPath(), "status", status, "device", c.GetString(ctxDevice), "err", ae.cause)
	} else {
		s.log.Info("request refused", "path", c.Request.URL.Path, "status", status, "device", c.GetString(ctxDevice), "field", ae.field)
	}
	if c.Request.Method == http.MethodHead {
		c.Status(status)
		c.Abort()
		return
	}
	c.AbortWithStatusJSON(status, errorBody{Error: ae.msg, Field: ae.field})
}

func (s *server) recovered(c *gin.Context, v any) {
	s.writeError(c, fmt.Errorf("panic: %v", v))
}
