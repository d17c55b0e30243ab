package ingest

import (
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes lists every route the gateway serves.
func (s *server) routes(r *gin.Engine) {
	// Appliance wire protocol (v1, fixed: appliances in the field speak it).
	r.POST("/v1/alerts", s.handleAlerts)
	r.POST("/v1/heartbeat", s.handleHeartbeat)
	r.POST("/v1/gaps", s.handleGap)
	r.GET("/v1/definitions", s.handleDefinitions)

	// Operations: readiness and metrics only when asked to, on a listener
	// that faces the internet (the admin listener has them).
	r.GET("/healthz", s.handleHealthz)
	if s.cfg.PublicMetrics {
		r.GET("/readyz", s.handleReadyz)
		if s.gather != nil {
			r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{})))
		}
	}

	r.NoRoute(func(c *gin.Context) { s.writeError(c, errorf(kindNotFound, "", "no such path %s", c.Request.URL.Path)) })
	r.NoMethod(func(c *gin.Context) {
		s.writeError(c, errorf(kindMethod, "", "method %s not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
}
