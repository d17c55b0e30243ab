package portal

import (
	"time"

	"github.com/mimamori/mimamori/portal-api/ratelimit"
)

// A first login's choice of user ID answers login_id_taken for an ID that
// exists: a way to find IDs to guess passwords of. A temporary session
// gets probeSessionBurst such answers, and one more every
// probeSessionEvery; a client address probeAddrBurst, and one more every
// probeAddrEvery. A person picks a free ID long before either.
const (
	probeSessionBurst = 5
	probeSessionEvery = 10 * time.Minute
	probeAddrBurst    = 20
	probeAddrEvery    = 3 * time.Minute
)

// idProbes counts the login_id_taken answers per session and per client
// address.
type idProbes struct {
	now              func() time.Time
	session, address *ratelimit.Limiter
}

func newIDProbes(now func() time.Time) *idProbes {
	return &idProbes{now: now, session: ratelimit.New(probeSessionBurst, probeSessionEvery),
		address: ratelimit.New(probeAddrBurst, probeAddrEvery)}
}

// wait is how long the session sid from ip must wait before it may choose
// a user ID again: 0 when it may now.
func (p *idProbes) wait(sid, ip string) time.Duration {
	now := p.now()
	return max(p.session.Wait(sessionKey(sid), now), p.address.Wait(ratelimit.Client(ip), now))
}

// taken counts a login_id_taken answer to the session sid from ip.
func (p *idProbes) taken(sid, ip string) {
	now := p.now()
	p.session.Add(sessionKey(sid), now)
	p.address.Add(ratelimit.Client(ip), now)
}
