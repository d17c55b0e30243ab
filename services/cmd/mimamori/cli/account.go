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
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
)

// accountCmd is the operator's side of portal accounts. The operator
// never sees a password or TOTP secret: a requested account's
// temporary credentials are mailed to the customer by the accounts owner.
type accountCmd struct {
	Request accountRequestCmd `cmd:"" help:"ask for one more portal account (credentials go to the customer's mail)"`
	Unlock  accountUnlockCmd  `cmd:"" help:"lift the lock of an account"`
	List    accountListCmd    `cmd:"" help:"list accounts (no secrets)"`
}

func (accountCmd) missing() string {
	return "account: want `account request`, `account unlock` or `account list`"
}

// byFlag is the deprecated --by of the commands that record their actor.
type byFlag struct {
	By string `help:"deprecated: the actor recorded is the identity that runs the command (cli:sasl:<Kafka user> or cli:os:<user>@<host>); a different value is refused"`
}

type accountRequestCmd struct {
	Customer string `help:"customer ID (cu_…)"`
	Role     string `default:"${role_default}" help:"role of the new account"`
	byFlag
	Settings
}

func (accountRequestCmd) groups() []config.Group { return kafkaGroups() }

func (c accountRequestCmd) run(ctx context.Context, e *env) error {
	if c.Customer == "" {
		return usageError{"account request: --customer (and --account for unlock) are required"}
	}
	actor, err := e.actor(c.By)
	if err != nil {
		return err
	}
	p, err := e.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	// The owner decides what it issues; reading the accounts first refuses
	// a request it would not fulfil before anything is written.
	st, err := readAccounts(ctx, e)
	if err != nil {
		return err
	}
	id, err := accounts.RequestAccount(ctx, p, st, c.Customer, c.Role, actor, time.Now())
	if errors.Is(err, accounts.ErrUnknownCustomer) || errors.Is(err, accounts.ErrRoleInvalid) || errors.Is(err, accounts.ErrOperatorElsewhere) {
		return fmt.Errorf("account request: %w; nothing was written", err)
	}
	if err != nil {
		return err
	}
	return e.printJSON(map[string]string{"customer_id": c.Customer, "request_id": id, "requested_by": actor,
		"status": "requested; the temporary credentials are mailed to the customer's registered address"})
}

type accountUnlockCmd struct {
	Customer string `help:"customer ID (cu_…)"`
	Account  string `help:"account ID (ac_…)"`
	byFlag
	Settings
}

func (accountUnlockCmd) groups() []config.Group { return kafkaGroups() }

func (c accountUnlockCmd) run(ctx context.Context, e *env) error {
	if c.Customer == "" || c.Account == "" {
		return usageError{"account unlock: --customer (and --account for unlock) are required"}
	}
	actor, err := e.actor(c.By)
	if err != nil {
		return err
	}
	p, err := e.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	if err := accounts.Unlock(ctx, p, c.Customer, c.Account, actor, time.Now()); err != nil {
		return err
	}
	return e.printJSON(map[string]string{"customer_id": c.Customer, "account_id": c.Account, "status": "unlocked", "unlocked_by": actor})
}

type accountListCmd struct {
	Customer string `help:"customer ID (cu_…; default: every customer)"`
	Settings
}

func (accountListCmd) groups() []config.Group { return kafkaGroups() }

func (c accountListCmd) run(ctx context.Context, e *env) error {
	return listAccounts(ctx, e, c.Customer)
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
