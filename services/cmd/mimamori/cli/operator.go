package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
	"github.com/mimamori/mimamori/services/cmd/mimamori/platform"
	"github.com/mimamori/mimamori/services/registry"
)

func (e *env) producer() (*eventlog.Producer, error) {
	kcfg, err := platform.KafkaFor(e.cfg)
	if err != nil {
		return nil, err
	}
	return eventlog.NewProducer(kcfg)
}

func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type customerCmd struct {
	Register customerRegisterCmd `cmd:"" help:"register a customer (prints JSON)"`
}

func (customerCmd) missing() string { return "customer: want `customer register`" }

type customerRegisterCmd struct {
	Name     string `help:"company or organisation name (required)"`
	Email    string `help:"application e-mail address (required)"`
	Reseller string `default:"rs_default" help:"reseller that owns the customer"`
	Settings
}

func (customerRegisterCmd) groups() []config.Group { return kafkaGroups() }

func (c customerRegisterCmd) run(ctx context.Context, e *env) error {
	if c.Name == "" || c.Email == "" {
		return usageError{"customer register: --name and --email are required"}
	}
	p, err := e.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	id, err := registry.RegisterCustomer(ctx, p, c.Name, c.Email, c.Reseller, time.Now())
	if err != nil {
		return err
	}
	return e.printJSON(map[string]string{"customer_id": id, "name": c.Name})
}

// DeviceCredentials is what `device register` prints: the appliance needs
// exactly this to talk to the ingest gateway. The credential is shown once.
type DeviceCredentials struct {
	DeviceID   string `json:"device_id"`
	CustomerID string `json:"customer_id"`
	Credential string `json:"credential"`
	Ingest     string `json:"ingest,omitempty"`
	CAFile     string `json:"ca_file,omitempty"`
}

type deviceCmd struct {
	Register   deviceRegisterCmd   `cmd:"" help:"register an appliance and print its credential as JSON"`
	Credential deviceCredentialCmd `cmd:"" help:"issue a registered appliance another credential (printed once)"`
	Revoke     deviceRevokeCmd     `cmd:"" help:"revoke a credential"`
	Reboot     deviceRebootCmd     `cmd:"" help:"ask an appliance to reboot"`
}

func (deviceCmd) missing() string {
	return "device: want `device register`, `device credential`, `device revoke` or `device reboot`"
}

type deviceRegisterCmd struct {
	Customer     string `help:"customer the appliance serves"`
	Serial       string `help:"serial number"`
	MAC          string `name:"mac" help:"MAC address of the appliance"`
	Model        string `default:"MU-100" help:"model"`
	Manufactured string `help:"manufacture date YYYY-MM-DD (R-17: replaced 7 years after)"`
	Settings
}

func (deviceRegisterCmd) groups() []config.Group { return kafkaGroups() }

func (c deviceRegisterCmd) run(ctx context.Context, e *env) error {
	if c.Customer == "" || c.Serial == "" || c.MAC == "" || c.Manufactured == "" {
		return usageError{"device register: --customer, --serial, --mac and --manufactured are required"}
	}
	p, err := e.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	spec := registry.DeviceSpec{Serial: c.Serial, MAC: c.MAC, Model: c.Model, ManufacturedOn: c.Manufactured, CustomerID: c.Customer}
	if err := e.checkNewDevice(ctx, spec); err != nil {
		return err
	}
	reg, err := registry.RegisterDevice(ctx, p, spec, time.Now())
	if err != nil {
		return err
	}
	out := DeviceCredentials{DeviceID: reg.DeviceID, CustomerID: reg.CustomerID, Credential: reg.Credential}
	if ep, err := platform.ReadEndpoints(e.cfg.DataDir); err == nil {
		out.Ingest, out.CAFile = ep.Ingest, ep.IngestCAFile
	}
	return e.printJSON(out)
}

type deviceRevokeCmd struct {
	Device     string `help:"device ID"`
	Credential string `help:"credential ID dc_… or the whole credential"`
	Reason     string `default:"revoked by operator" help:"reason recorded with the revocation"`
	Settings
}

func (deviceRevokeCmd) groups() []config.Group { return kafkaGroups() }

func (c deviceRevokeCmd) run(ctx context.Context, e *env) error {
	if c.Device == "" || c.Credential == "" {
		return usageError{"device revoke: --device and --credential are required"}
	}
	p, err := e.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	if err := registry.RevokeCredential(ctx, p, c.Device, registry.CredentialID(c.Credential), c.Reason, time.Now()); err != nil {
		return err
	}
	return e.printJSON(map[string]string{"device_id": c.Device, "credential_id": registry.CredentialID(c.Credential), "status": "revoked"})
}

// checkNewDevice refuses a device whose customer is unknown or whose
// serial or MAC is registered already, so that running the command again
// (after a timeout, say) does not give one appliance two devices and two
// credentials. Registrations are made by operators one at a time; two run
// at the same instant are not caught.
func (e *env) checkNewDevice(ctx context.Context, spec registry.DeviceSpec) error {
	st, err := e.registryState(ctx)
	if err != nil {
		return fmt.Errorf("device register: read the registry: %w", err)
	}
	if err := st.CheckNewDevice(spec); err != nil {
		return fmt.Errorf("device register: %w; nothing was registered", err)
	}
	return nil
}

// registryState reads the device registry from the log, up to now.
func (e *env) registryState(ctx context.Context) (*registry.State, error) {
	kcfg, err := platform.KafkaFor(e.cfg)
	if err != nil {
		return nil, err
	}
	st := registry.NewState()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = eventlog.ReadToEnd(wctx, kcfg, registry.Topics(kcfg), e.log, func(r *kgo.Record, ev events.Envelope) {
		if err := st.Apply(ev); err != nil {
			e.log.Warn("registry event skipped", "topic", r.Topic, "offset", r.Offset, "err", err)
		}
	})
	return st, err
}

// deviceCredentialCmd issues another credential for a registered device
// and prints it once, like `device register`.
type deviceCredentialCmd struct {
	Device string `help:"device ID dv_… (required)"`
	Settings
}

func (deviceCredentialCmd) groups() []config.Group { return kafkaGroups() }

func (c deviceCredentialCmd) run(ctx context.Context, e *env) error {
	if c.Device == "" {
		return usageError{"device credential: --device is required"}
	}
	st, err := e.registryState(ctx)
	if err != nil {
		return fmt.Errorf("device credential: read the registry: %w", err)
	}
	d, ok := st.Device(c.Device)
	if !ok {
		return fmt.Errorf("device credential: device %s is not registered; nothing was issued", c.Device)
	}
	p, err := e.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	token, err := registry.IssueCredential(ctx, p, d.ID, time.Now())
	if err != nil {
		return err
	}
	out := DeviceCredentials{DeviceID: d.ID, CustomerID: d.CustomerID, Credential: token}
	if ep, err := platform.ReadEndpoints(e.cfg.DataDir); err == nil {
		out.Ingest, out.CAFile = ep.Ingest, ep.IngestCAFile
	}
	return e.printJSON(out)
}

// deviceRebootCmd asks an appliance to reboot: the request is
// recorded and handed over on the device's next heartbeat reply.
type deviceRebootCmd struct {
	Device string `help:"device ID dv_… (required)"`
	Reason string `default:"requested by operator" help:"reason recorded with the request"`
	By     string `help:"deprecated: the actor recorded as requested_by is the identity that runs the command (cli:sasl:<Kafka user> or cli:os:<user>@<host>); a different value is refused"`
	Settings
}

func (deviceRebootCmd) groups() []config.Group { return kafkaGroups() }

func (c deviceRebootCmd) run(ctx context.Context, e *env) error {
	if c.Device == "" {
		return usageError{"device reboot: --device is required"}
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
	id, err := registry.RequestReboot(ctx, p, c.Device, actor, c.Reason, time.Now())
	if err != nil {
		return err
	}
	return e.printJSON(map[string]string{"device_id": c.Device, "request_id": id, "status": "requested", "requested_by": actor})
}

type migrateCmd struct{ Settings }

func (migrateCmd) groups() []config.Group { return attachGroups() }

func (migrateCmd) run(ctx context.Context, e *env) error {
	p, err := platform.Attach(ctx, e.cfg, e.log)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(e.out, "clickhouse database %s at %s is up to date\n", e.cfg.ClickHouseDatabase, p.CH.Addr)
	return nil
}
