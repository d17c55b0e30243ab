package cli

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/portal-api/accounts"
	"github.com/mimamori/mimamori/services/platform"
)

// cmdAccount is the operator's side of portal accounts. The operator never
// sees a password or TOTP secret: a requested account's temporary
// credentials are mailed to the customer by the accounts owner.
func cmdAccount(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || (args[0] != "request" && args[0] != "unlock" && args[0] != "list") {
		e.flags.Usage()
		return usageError{"account: want `account request`, `account unlock` or `account list`"}
	}
	sub := args[0]
	customer := e.flags.String("customer", "", "customer ID (cu_…)")
	account := e.flags.String("account", "", "account ID (ac_…, unlock)")
	role := e.flags.String("role", events.RoleCustomerAdmin, "role of the new account (request)")
	by := e.flags.String("by", "operator", "operator name recorded in the event")
	if _, err := e.parse(args[1:]); err != nil {
		return err
	}
	if sub == "list" {
		return listAccounts(ctx, e, *customer)
	}
	if *customer == "" || (sub == "unlock" && *account == "") {
		return usageError{"account " + sub + ": --customer (and --account for unlock) are required"}
	}
	p, err := e.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	if sub == "unlock" {
		if err := accounts.Unlock(ctx, p, *customer, *account, *by, time.Now()); err != nil {
			return err
		}
		return e.printJSON(map[string]string{"customer_id": *customer, "account_id": *account, "status": "unlocked"})
	}
	id, err := accounts.RequestAccount(ctx, p, *customer, *role, *by, time.Now())
	if err != nil {
		return err
	}
	return e.printJSON(map[string]string{"customer_id": *customer, "request_id": id,
		"status": "requested; the temporary credentials are mailed to the customer's registered address"})
}

func listAccounts(ctx context.Context, e *env, customer string) error {
	kcfg, err := platform.KafkaFor(e.cfg)
	if err != nil {
		return err
	}
	st := accounts.NewState()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	err = eventlog.ReadToEnd(wctx, kcfg, []string{kcfg.Topic(events.TopicAccounts)}, e.log,
		func(_ *kgo.Record, ev events.Envelope) { _ = st.Apply(ev) })
	wcancel()
	if err != nil {
		return err
	}
	type row struct {
		AccountID  string `json:"account_id"`
		CustomerID string `json:"customer_id"`
		LoginID    string `json:"login_id"`
		Role       string `json:"role"`
		Temporary  bool   `json:"temporary"`
		Factor     string `json:"second_factor"`
		Locked     bool   `json:"locked"`
	}
	out := []row{}
	for _, a := range st.Accounts(customer) {
		out = append(out, row{a.ID, a.CustomerID, a.LoginID, a.Role, a.Temporary, a.Factor, a.Locked})
	}
	return e.printJSON(out)
}
