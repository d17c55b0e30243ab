package cli

import (
	"context"
	"errors"
	"fmt"
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
	by := e.flags.String("by", "", "deprecated: the actor recorded is the identity that runs the command (cli:sasl:<Kafka user> or cli:os:<user>@<host>); a different value is refused")
	if _, err := e.parse(args[1:]); err != nil {
		return err
	}
	if sub == "list" {
		return listAccounts(ctx, e, *customer)
	}
	if *customer == "" || (sub == "unlock" && *account == "") {
		return usageError{"account " + sub + ": --customer (and --account for unlock) are required"}
	}
	actor, err := e.actor(*by)
	if err != nil {
		return err
	}
	p, err := e.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	if sub == "unlock" {
		if err := accounts.Unlock(ctx, p, *customer, *account, actor, time.Now()); err != nil {
			return err
		}
		return e.printJSON(map[string]string{"customer_id": *customer, "account_id": *account, "status": "unlocked", "unlocked_by": actor})
	}
	// The owner decides what it issues; reading the accounts first refuses
	// a request it would not fulfil before anything is written.
	st, err := readAccounts(ctx, e)
	if err != nil {
		return err
	}
	id, err := accounts.RequestAccount(ctx, p, st, *customer, *role, actor, time.Now())
	if errors.Is(err, accounts.ErrUnknownCustomer) || errors.Is(err, accounts.ErrRoleInvalid) || errors.Is(err, accounts.ErrOperatorElsewhere) {
		return fmt.Errorf("account request: %w; nothing was written", err)
	}
	if err != nil {
		return err
	}
	return e.printJSON(map[string]string{"customer_id": *customer, "request_id": id, "requested_by": actor,
		"status": "requested; the temporary credentials are mailed to the customer's registered address"})
}

// readAccounts reads the accounts topic to its end, as the owner holds it.
func readAccounts(ctx context.Context, e *env) (*accounts.State, error) {
	kcfg, err := platform.KafkaFor(e.cfg)
	if err != nil {
		return nil, err
	}
	st := accounts.NewState()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	err = eventlog.ReadToEnd(wctx, kcfg, []string{kcfg.Topic(events.TopicAccounts)}, e.log,
		func(_ *kgo.Record, ev events.Envelope) { _ = st.Apply(ev) })
	return st, err
}

func listAccounts(ctx context.Context, e *env, customer string) error {
	st, err := readAccounts(ctx, e)
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
