package portal

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/mimamori/mimamori/schemas/messages"
)

// apiError is the one JSON shape of every error the portal answers: a
// stable code a client switches on, and a message to show, in the
// language the request accepts (Japanese unless it asks for English,
// A bad parameter also names the parameter.
type apiError struct {
	Code      string `json:"error"`
	Message   string `json:"message"`
	Parameter string `json:"parameter,omitempty"`
}

// writeAPIError answers an error code with its text, "api.<code>" of the
// catalogue (schemas/messages).
func writeAPIError(c *gin.Context, status int, code string) {
	writeAPIMessage(c, status, code, code)
}

// writeAPIMessage answers an error code with the text of another key of
// the catalogue, "api.<key>": one code, with what to do about it.
func writeAPIMessage(c *gin.Context, status int, code, key string) {
	writeAPIBody(c, status, apiError{Code: code, Message: messages.Text(c.GetHeader("Accept-Language"), "api."+key)})
}

// writeAPIBody is the one place that writes an error response.
func writeAPIBody(c *gin.Context, status int, e apiError) {
	c.AbortWithStatusJSON(status, e)
}

// writeError answers a request the analytics store failed; the cause goes
// to the log, not to the caller.
func writeError(c *gin.Context, log *slog.Logger, err error) {
	log.Error("portal request failed", "path", c.Request.URL.Path, "err", err)
	writeAPIError(c, http.StatusServiceUnavailable, "unavailable")
}
