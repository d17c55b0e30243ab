package portal

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/singleflight"

	"github.com/mimamori/mimamori/portal-api/ratelimit"
)

// The status page is public: its figures are read at most once every
// statusMaxAge, one query at a time, and a client address gets statusBurst
// pages at once and one more every statusEvery.
const (
	statusMaxAge = 5 * time.Second
	statusBurst  = 20
	statusEvery  = time.Second
)

// statusCache holds the figures of the status page.
type statusCache struct {
	d   Deps
	lim *ratelimit.Limiter
	sf  singleflight.Group

	mu sync.Mutex
	s  Status
	at time.Time // when the query of s started; zero before the first
}

func newStatusCache(d Deps) *statusCache {
	return &statusCache{d: d, lim: ratelimit.New(statusBurst, statusEvery)}
}

// fresh returns the figures if they are younger than statusMaxAge.
func (sc *statusCache) fresh() (Status, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.s, !sc.at.IsZero() && sc.d.Now().Sub(sc.at) < statusMaxAge
}

// get returns figures at most statusMaxAge old. Concurrent requests for
// stale figures share one query, which a request that goes away does not
// cancel.
func (sc *statusCache) get(ctx context.Context) (Status, error) {
	if s, ok := sc.fresh(); ok {
		return s, nil
	}
	v, err, _ := sc.sf.Do("status", func() (any, error) {
		if s, ok := sc.fresh(); ok { // read while this request waited
			return s, nil
		}
		start := sc.d.Now()
		s, err := readStatus(context.WithoutCancel(ctx), sc.d)
		if err != nil {
			return nil, err
		}
		sc.mu.Lock()
		sc.s, sc.at = s, start
		sc.mu.Unlock()
		return s, nil
	})
	if err != nil {
		return Status{}, err
	}
	return v.(Status), nil
}

// limit answers 429 throttled, with Retry-After, to a client address
// (ratelimit.Client of the address the trusted proxies report) past its
// pages.
func (sc *statusCache) limit(c *gin.Context) {
	if wait := sc.lim.Take(ratelimit.Client(c.ClientIP()), sc.d.Now()); wait > 0 {
		setRetryAfter(c, wait)
		writeAPIError(c, http.StatusTooManyRequests, "throttled")
		return
	}
	c.Next()
}

// setRetryAfter says in whole seconds, at least 1, when to try again.
func setRetryAfter(c *gin.Context, wait time.Duration) {
	c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
}

// json answers the figures as JSON (GET /api/v1/status).
func (sc *statusCache) json(c *gin.Context) {
	s, err := sc.get(c.Request.Context())
	if err != nil {
		writeError(c, sc.d.Logger, err)
		return
	}
	c.JSON(http.StatusOK, s)
}

// page answers the status page (GET /status).
func (sc *statusCache) page(c *gin.Context) {
	s, err := sc.get(c.Request.Context())
	if err != nil {
		writeError(c, sc.d.Logger, err)
		return
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Status(http.StatusOK)
	_ = page.Execute(c.Writer, s)
}
