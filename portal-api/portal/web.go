package portal

import (
	"github.com/gin-gonic/gin"

	"github.com/mimamori/mimamori/portal-api/web"
)

// webRoutes serves the customer's web application: its page at every
// path the application routes itself, and its embedded assets.
func webRoutes(r *gin.Engine) {
	index := gin.WrapH(web.Index())
	for _, p := range web.Pages {
		r.GET(p, index)
	}
	r.GET(web.AssetsPrefix+"*file", gin.WrapH(web.Assets()))
}
