package portal

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/mimamori/mimamori/infra/admin"
	"github.com/mimamori/mimamori/portal-api/accounts"
	"github.com/mimamori/mimamori/portal-api/web"
)

// route is one entry of the route table.
type route struct {
	method, path string
	needs        needs
	handlers     []gin.HandlerFunc
}

// needs says what a route stands on: it is served only when the portal
// has it.
type needs int

const (
	always        needs = iota
	login               // the accounts owner and sessions
	store               // the analytics store (ClickHouse)
	loginAndStore       // both: the dashboards and the operator's API
)

// routes serves the route table: every path the portal answers, who may
// call it (the chain before its handler) and what it needs.
func routes(r *gin.Engine, d Deps) {
	var (
		a  *authAPI
		h  *dashAPI
		o  *opAPI
		st *statusCache
	)
	has := map[needs]bool{always: true}
	if d.Accounts != nil {
		a, has[login] = newAuthAPI(d), true
	}
	if d.Conn != nil {
		st, has[store] = newStatusCache(d), true
	}
	if has[login] && has[store] {
		h = newDashAPI(d)
		o, has[loginAndStore] = &opAPI{a: a, dash: h, deps: d}, true
	}
	var adm gin.HandlerFunc
	if has[store] {
		adm = gin.WrapH(admin.Handler(d.Registry, Checks(d)))
	}
	for _, rt := range table(d, a, h, o, st, adm) {
		if has[rt.needs] {
			r.Handle(rt.method, rt.path, rt.handlers...)
		}
	}
	if has[store] {
		r.NoRoute(func(c *gin.Context) {
			writeAPIBody(c, http.StatusNotFound, apiError{Code: "not_found",
				Message: "no such page: " + c.Request.Method + " " + c.Request.URL.Path})
		})
	}
}

// table lists the routes. The handlers of a part the portal lacks are
// method values on a nil pointer (or nil), never called: routes skips them.
func table(d Deps, a *authAPI, h *dashAPI, o *opAPI, st *statusCache, adm gin.HandlerFunc) []route {
	chain := func(first []gin.HandlerFunc, rest ...gin.HandlerFunc) []gin.HandlerFunc {
		return append(append([]gin.HandlerFunc(nil), first...), rest...)
	}
	// Who may call: anyone (state-changing requests from this site only),
	// a session at a stage of its login, an active session, an operator,
	// an operator viewing one customer (named in the path, never in a
	// customer's own routes).
	api := []gin.HandlerFunc{a.crossSite}
	at := func(stage string) []gin.HandlerFunc { return chain(api, a.need(stage)) }
	active := at(accounts.StageActive)
	operator := chain(active, o.operatorOnly)
	viewing := chain(operator, o.customer)

	index, assets := gin.WrapH(web.Index()), gin.WrapH(web.Assets())
	var rs []route
	add := func(method, path string, n needs, hs []gin.HandlerFunc) {
		rs = append(rs, route{method: method, path: path, needs: n, handlers: hs})
	}
	get := http.MethodGet
	post := http.MethodPost

	// The web application: its page at every path it routes itself, and its assets.
	for _, p := range web.Pages {
		add(get, p, always, chain(nil, index))
	}
	add(get, web.AssetsPrefix+"*file", always, chain(nil, assets))
	add(get, "/api/v1/openapi.json", always, chain(nil, openAPIHandler))

	// Logging in, second factors, password reset.
	add(post, "/api/v1/login", login, chain(api, a.login))
	add(post, "/api/v1/login/credentials", login, chain(at(accounts.StageChangeCredentials), a.changeCredentials))
	add(post, "/api/v1/login/second-factor", login, chain(at(accounts.StageSecondFactor), a.secondFactor))
	add(post, "/api/v1/login/second-factor/sms", login, chain(at(accounts.StageSecondFactor), a.sendLoginSMS))
	// The enrolment routes serve the first login's choice and, later, the
	// settings: an account without a factor enrols one, an account with one
	// replaces it ("replace": true).
	add(post, "/api/v1/2fa/totp/enrol", login, chain(at(""), a.enrolment(true), a.totpEnrol))
	add(post, "/api/v1/2fa/totp/confirm", login, chain(at(""), a.enrolment(false), a.totpConfirm))
	add(post, "/api/v1/2fa/sms/enrol", login, chain(at(""), a.enrolment(true), a.smsEnrol))
	add(post, "/api/v1/2fa/sms/verify", login, chain(at(""), a.enrolment(false), a.smsVerify))
	add(post, "/api/v1/2fa/decline", login, chain(at(accounts.StageChooseFactor), a.decline))
	add(post, "/api/v1/logout", login, chain(at(""), a.logout))
	add(get, "/api/v1/me", login, chain(at(""), a.me))
	add(post, "/api/v1/password-reset", login, chain(api, a.resetRequest))
	add(post, "/api/v1/password-reset/confirm", login, chain(api, a.resetConfirm))
	// The settings of a logged-in user.
	add(post, "/api/v1/account/password", login, chain(active, a.changePassword))
	add(post, "/api/v1/account/reauthenticate", login, chain(active, a.reauthenticate))
	add(post, "/api/v1/account/reauthenticate/sms", login, chain(active, a.sendReauthSMS))
	add(get, "/api/v1/account/second-factor", login, chain(active, a.secondFactorState))
	add(post, "/api/v1/account/second-factor/disable", login, chain(active, a.reauthenticated, a.disableFactor))
	add(post, "/api/v1/account/recovery-codes", login, chain(active, a.reauthenticated, a.newRecoveryCodes))

	// A customer's dashboards: the customer is the session's.
	add(get, "/api/v1/dashboard/summary", loginAndStore, chain(active, h.summary))
	add(get, "/api/v1/alerts", loginAndStore, chain(active, h.alerts))
	add(get, "/api/v1/alerts/:id", loginAndStore, chain(active, h.alert))
	add(get, "/api/v1/devices", loginAndStore, chain(active, h.devices))
	add(get, "/api/v1/compare/participants", loginAndStore, chain(active, h.participants))
	add(get, "/api/v1/compare/devices", loginAndStore, chain(active, h.compareDevices))
	add(get, "/api/v1/notices", loginAndStore, chain(active, h.notices))
	add(get, "/api/v1/notices/:id", loginAndStore, chain(active, h.notice))

	// The operator's API: every customer, their accounts, the
	// notices, and one customer's dashboards read as that customer would,
	// each read recorded (audit).
	add(get, "/api/v1/operator/customers", loginAndStore, chain(operator, o.customers))
	add(post, "/api/v1/operator/notices", loginAndStore, chain(operator, o.publishNotice))
	add(get, "/api/v1/operator/customers/:customer/accounts", loginAndStore, chain(viewing, o.audit, o.accounts))
	add(post, "/api/v1/operator/customers/:customer/accounts", loginAndStore, chain(viewing, o.requestAccount))
	add(post, "/api/v1/operator/customers/:customer/accounts/:account/unlock", loginAndStore, chain(viewing, o.unlock))
	add(get, "/api/v1/operator/customers/:customer/summary", loginAndStore, chain(viewing, o.audit, h.summary))
	add(get, "/api/v1/operator/customers/:customer/alerts", loginAndStore, chain(viewing, o.audit, h.alerts))
	add(get, "/api/v1/operator/customers/:customer/alerts/:id", loginAndStore, chain(viewing, o.audit, h.alert))
	add(get, "/api/v1/operator/customers/:customer/devices", loginAndStore, chain(viewing, o.audit, h.devices))
	add(get, "/api/v1/operator/customers/:customer/notices", loginAndStore, chain(viewing, o.audit, h.notices))
	add(get, "/api/v1/operator/customers/:customer/notices/:id", loginAndStore, chain(viewing, o.audit, h.notice))

	// Operations: liveness always with the store, readiness and metrics
	// here only when they are public (otherwise on the admin port), and
	// the platform status page and its JSON.
	add(get, "/healthz", store, chain(nil, adm))
	if d.PublicMetrics {
		add(get, "/readyz", store, chain(nil, adm))
		add(get, "/metrics", store, chain(nil, adm))
	}
	add(get, "/api/v1/status", store, chain([]gin.HandlerFunc{st.limit}, st.json))
	add(get, "/status", store, chain([]gin.HandlerFunc{st.limit}, st.page))
	return rs
}
