package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mimamori/mimamori/events"
	"github.com/mimamori/mimamori/events/eventlog"
	"github.com/mimamori/mimamori/services/platform"
	"github.com/mimamori/mimamori/services/registry"
	"github.com/twmb/franz-go/pkg/kgo"
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

func cmdCustomer(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "register" {
		e.flags.Usage()
		return usageError{"customer: want `customer register`"}
	}
	name := e.flags.String("name", "", "company or organisation name (required)")
	email := e.flags.String("email", "", "application e-mail address (required)")
	reseller := e.flags.String("reseller", "rs_default", "reseller that owns the customer")
	if _, err := e.parse(args[1:]); err != nil {
		return err
	}
	if *name == "" || *email == "" {
		return usageError{"customer register: --name and --email are required"}
	}
	p, err := e.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	id, err := registry.RegisterCustomer(ctx, p, *name, *email, *reseller, time.Now())
	if err != nil {
		return err
	}
	return e.printJSON(map[string]string{"customer_id": id, "name": *name})
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

func cmdDevice(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "reboot" {
		return cmdDeviceReboot(ctx, e, args[1:])
	}
	if len(args) > 0 && args[0] == "credential" {
		return cmdDeviceCredential(ctx, e, args[1:])
	}
	if len(args) == 0 || (args[0] != "register" && args[0] != "revoke") {
		e.flags.Usage()
		return usageError{"device: want `device register`, `device credential`, `device revoke` or `device reboot`"}
	}
	sub := args[0]
	customer := e.flags.String("customer", "", "customer the appliance serves (register)")
	serial := e.flags.String("serial", "", "serial number (register)")
	mac := e.flags.String("mac", "", "MAC address of the appliance (register)")
	model := e.flags.String("model", "MU-100", "model (register)")
	made := e.flags.String("manufactured", "", "manufacture date YYYY-MM-DD (register; R-17 replacement after 7 years)")
	device := e.flags.String("device", "", "device ID (revoke)")
	cred := e.flags.String("credential", "", "credential ID dc_… or the whole credential (revoke)")
	reason := e.flags.String("reason", "revoked by operator", "reason recorded with the revocation")
	if _, err := e.parse(args[1:]); err != nil {
		return err
	}
	if sub == "revoke" && (*device == "" || *cred == "") {
		return usageError{"device revoke: --device and --credential are required"}
	}
	if sub == "register" && (*customer == "" || *serial == "" || *mac == "" || *made == "") {
		return usageError{"device register: --customer, --serial, --mac and --manufactured are required"}
	}
	p, err := e.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	if sub == "revoke" {
		if err := registry.RevokeCredential(ctx, p, *device, registry.CredentialID(*cred), *reason, time.Now()); err != nil {
			return err
		}
		return e.printJSON(map[string]string{"device_id": *device, "credential_id": registry.CredentialID(*cred), "status": "revoked"})
	}
	spec := registry.DeviceSpec{Serial: *serial, MAC: *mac, Model: *model, ManufacturedOn: *made, CustomerID: *customer}
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

// cmdDeviceCredential issues another credential for a registered device
// and prints it once, like `device register`.
func cmdDeviceCredential(ctx context.Context, e *env, args []string) error {
	device := e.flags.String("device", "", "device ID dv_… (required)")
	if _, err := e.parse(args); err != nil {
		return err
	}
	if *device == "" {
		return usageError{"device credential: --device is required"}
	}
	st, err := e.registryState(ctx)
	if err != nil {
		return fmt.Errorf("device credential: read the registry: %w", err)
	}
	d, ok := st.Device(*device)
	if !ok {
		return fmt.Errorf("device credential: device %s is not registered; nothing was issued", *device)
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

// cmdDeviceReboot asks an appliance to reboot: the request is
// recorded and handed over on the device's next heartbeat reply.
func cmdDeviceReboot(ctx context.Context, e *env, args []string) error {
	device := e.flags.String("device", "", "device ID dv_… (required)")
	reason := e.flags.String("reason", "requested by operator", "reason recorded with the request")
	by := e.flags.String("by", "", "deprecated: the actor recorded as requested_by is the identity that runs the command (cli:sasl:<Kafka user> or cli:os:<user>@<host>); a different value is refused")
	if _, err := e.parse(args); err != nil {
		return err
	}
	if *device == "" {
		return usageError{"device reboot: --device is required"}
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
	id, err := registry.RequestReboot(ctx, p, *device, actor, *reason, time.Now())
	if err != nil {
		return err
	}
	return e.printJSON(map[string]string{"device_id": *device, "request_id": id, "status": "requested", "requested_by": actor})
}

func cmdMigrate(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(args); err != nil {
		return err
	}
	p, err := platform.Attach(ctx, e.cfg, e.log)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(e.out, "clickhouse database %s at %s is up to date\n", e.cfg.ClickHouseDatabase, p.CH.Addr)
	return nil
}
