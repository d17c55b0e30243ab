package portal

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// OpenAPI is the OpenAPI 3 document of the portal API, served at
// /api/v1/openapi.json; tests check responses against it.
//
//go:embed openapi.json
var OpenAPI []byte

func openAPIHandler(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", OpenAPI)
}
