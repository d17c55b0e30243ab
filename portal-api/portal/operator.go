package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/notices"
	"github.com/mimamori/mimamori/portal-api/accounts"
)

// operatorSource is the CloudEvents source of what an operator publishes
// through the portal; the operator's account ID follows it, so a notice
// names who published it (account events carry it in requested_by and
// unlocked_by).
const operatorSource = "mimamori/portal/operator/"

// viewedCustomer is the context key of the customer an operator route
// names in its path. Only the operator routes that name one set it.
const viewedCustomer = "operator_customer"

// opAPI is the operator's API: every customer, their accounts
// and the notices. Only sessions of operator accounts pass.
type opAPI struct {
	a    *authAPI
	dash *dashAPI
	deps Deps
}

// publish writes an event in the operator's name (the CloudEvents source
// names the account); on failure it answers the request and reports false.
func (o *opAPI) publish(c *gin.Context, p events.Payload, now time.Time) bool {
	e, err := events.New(operatorSource+operatorOf(c).AccountID, p, now)
	if err == nil {
		err = o.deps.Accounts.Publisher().Publish(c.Request.Context(), e)
	}
	if err != nil {
		o.a.fail(c, err)
		return false
	}
	return true
}

// audit records the operator's read of a customer's data before it is
// served (OperatorViewedCustomer); no record, no data.
func (o *opAPI) audit(c *gin.Context) {
	op := operatorOf(c)
	p := &events.OperatorViewedCustomer{CustomerID: c.GetString(viewedCustomer), OperatorCustomerID: op.CustomerID,
		OperatorAccountID: op.AccountID, Route: c.FullPath(), Object: c.Param("id"), SourceIP: c.ClientIP(),
		ViewedAt: o.dash.st.Now().UTC()}
	if len(p.Object) > 64 {
		notFound(c) // no alert has such an ID
		return
	}
	if !o.publish(c, p, o.dash.st.Now()) {
		return
	}
	c.Next()
}

// operatorOnly admits sessions whose account has the operator role, both
// when it logged in and now, and is of the operator's own organisation.
// An operator account without a second factor (one that declined it
// before operators could not) is refused until it sets one up: its next
// login asks for that.
func (o *opAPI) operatorOnly(c *gin.Context) {
	_, se := current(c)
	st := o.a.svc.State()
	acc, ok := st.Account(se.p.AccountID)
	if se.p.Role != events.RoleOperator || !ok || acc.Role != events.RoleOperator || acc.CustomerID != st.OperatorOrganisation() {
		writeAPIError(c, http.StatusForbidden, "operator_only")
		return
	}
	if acc.Factor != events.FactorTOTP && acc.Factor != events.FactorSMS {
		writeAPIError(c, http.StatusForbidden, "operator_needs_second_factor")
		return
	}
	c.Next()
}

// customer checks the customer of the path and makes it the one the
// dashboard handlers read.
func (o *opAPI) customer(c *gin.Context) {
	id := c.Param("customer")
	if id == "" || len(id) > 64 || !o.a.svc.State().HasCustomer(id) {
		notFound(c)
		return
	}
	c.Set(viewedCustomer, id)
	c.Next()
}

func operatorOf(c *gin.Context) accounts.Principal {
	_, se := current(c)
	return se.p
}

func (o *opAPI) customers(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
	defer cancel()
	devices, alerts := map[string]uint64{}, map[string]uint64{}
	for _, q := range []struct {
		sql  string
		args []any
		into map[string]uint64
	}{
		{fmt.Sprintf(`SELECT customer_id, count() FROM %s.devices GROUP BY customer_id`, o.deps.Database), nil, devices},
		{fmt.Sprintf(`SELECT customer_id, uniqExact(device_id, id) FROM %s.alerts_log WHERE detected_at >= ? GROUP BY customer_id`, o.deps.Database),
			[]any{o.dash.st.Now().Add(-30 * 24 * time.Hour).UTC()}, alerts},
	} {
		rows, err := o.deps.Conn.Query(ctx, q.sql, q.args...)
		if err != nil {
			o.dash.fail(c, err)
			return
		}
		for rows.Next() {
			var id string
			var n uint64
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				o.dash.fail(c, err)
				return
			}
			q.into[id] = n
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			o.dash.fail(c, err)
			return
		}
	}
	st := o.a.svc.State()
	items := []gin.H{}
	for _, cu := range st.Customers() {
		locks := 0
		for _, a := range st.Accounts(cu.ID) {
			if a.Locked {
				locks++
			}
		}
		items = append(items, gin.H{"customer_id": cu.ID, "name": cu.Name, "devices": devices[cu.ID],
			"alerts_30d": alerts[cu.ID], "open_locks": locks})
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// accounts lists a customer's accounts without any secret or hash.
func (o *opAPI) accounts(c *gin.Context) {
	items := []gin.H{}
	for _, a := range o.a.svc.State().Accounts(c.Param("customer")) {
		items = append(items, gin.H{"account_id": a.ID, "customer_id": a.CustomerID, "login_id": a.LoginID, "role": a.Role,
			"temporary": a.Temporary, "second_factor": a.Factor, "locked": a.Locked})
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

// requestAccount asks the accounts owner for one more account of the
// customer (as `mimamori account request`); the credentials go by mail to
// the customer's registered address, never to the operator.
func (o *opAPI) requestAccount(c *gin.Context) {
	var req struct {
		Role string `json:"role"`
	}
	if !bind(c, &req) {
		return
	}
	if req.Role == "" {
		req.Role = events.RoleCustomerAdmin
	}
	cust, op := c.Param("customer"), operatorOf(c)
	// An operator account sees every customer: the accounts owner issues
	// it to the operator's own organisation only.
	id, err := accounts.RequestAccount(c.Request.Context(), o.deps.Accounts.Publisher(), o.a.svc.State(), cust, req.Role,
		op.AccountID, o.dash.st.Now())
	switch {
	case errors.Is(err, accounts.ErrRoleInvalid):
		badParam(c, "role", "want customer_admin or operator")
		return
	case errors.Is(err, accounts.ErrOperatorElsewhere):
		badParam(c, "role", "operator accounts belong to the operator's own organisation only")
		return
	case err != nil:
		o.a.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"customer_id": cust, "request_id": id, "status": "requested"})
}

// unlock lifts a hard lock (as `mimamori account unlock`); never the
// operator's own (403 own_account).
func (o *opAPI) unlock(c *gin.Context) {
	cust := c.Param("customer")
	acc, ok := o.a.svc.State().Account(c.Param("account"))
	if !ok || acc.CustomerID != cust {
		notFound(c)
		return
	}
	if err := accounts.Unlock(c.Request.Context(), o.deps.Accounts.Publisher(), cust, acc.ID, operatorOf(c).AccountID, o.dash.st.Now()); err != nil {
		o.a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"customer_id": cust, "account_id": acc.ID, "status": "unlocked"})
}

// publishNotice publishes a fault, maintenance or firmware notice with the
// CLI's rules (notices.Build).
func (o *opAPI) publishNotice(c *gin.Context) {
	var req struct {
		Kind        string    `json:"kind"`
		Level       string    `json:"level"`
		Customers   string    `json:"customers"`
		Summary     string    `json:"summary"`
		Details     string    `json:"details"`
		StartedAt   time.Time `json:"started_at"`
		StartsAt    time.Time `json:"starts_at"`
		EndsAt      time.Time `json:"ends_at"`
		Version     string    `json:"firmware_version"`
		AvailableAt time.Time `json:"available_at"`
		Force       bool      `json:"force"`
	}
	if !bind(c, &req) {
		return
	}
	now := o.dash.st.Now()
	p, err := notices.Build(notices.Request{Kind: req.Kind, Level: req.Level, Customers: req.Customers, Summary: req.Summary,
		Details: req.Details, Started: req.StartedAt, Starts: req.StartsAt, Ends: req.EndsAt, Version: req.Version,
		Available: req.AvailableAt, Force: req.Force}, now)
	var refused *notices.Error
	if errors.As(err, &refused) {
		writeAPIBody(c, http.StatusUnprocessableEntity, apiError{Code: "notice_refused", Message: refused.Msg})
		return
	}
	if err != nil {
		o.a.fail(c, err)
		return
	}
	if !o.publish(c, p, now) {
		return
	}
	c.JSON(http.StatusCreated, gin.H{"notice_id": p.Key(), "type": p.EventType(), "published_by": operatorOf(c).AccountID})
}
