package config_test

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/mimamori/mimamori/services/cmd/mimamori/config"
)

// load parses args and env as the binary does.
func load(t *testing.T, env map[string]string, args ...string) (config.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.Register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return config.Load(fs, func(k string) string { return env[k] })
}

const token = "sms-token-8c1f2e9d"

func TestSMSGatewaySettings(t *testing.T) {
	cases := []struct {
		name       string
		env        map[string]string
		args       []string
		url, token string
	}{
		{"default: the embedded sink", nil, nil, "", ""},
		{"from the environment", map[string]string{"MIMAMORI_SMS_GATEWAY_URL": "https://sms.example/v1/messages",
			"MIMAMORI_SMS_GATEWAY_TOKEN": token}, nil, "https://sms.example/v1/messages", token},
		{"flags win", map[string]string{"MIMAMORI_SMS_GATEWAY_URL": "https://sms.example/v1", "MIMAMORI_SMS_GATEWAY_TOKEN": "old"},
			[]string{"--sms-gateway-url", "https://sms2.example/send", "--sms-gateway-token", token}, "https://sms2.example/send", token},
		{"no token", nil, []string{"--sms-gateway-url", "https://sms.example/v1"}, "https://sms.example/v1", ""},
		{"http to loopback", nil, []string{"--sms-gateway-url", "http://127.0.0.1:8099/sms"}, "http://127.0.0.1:8099/sms", ""},
		{"http to localhost", nil, []string{"--sms-gateway-url", "http://localhost:8099/sms"}, "http://localhost:8099/sms", ""},
		{"http to ::1", nil, []string{"--sms-gateway-url", "http://[::1]:8099/sms"}, "http://[::1]:8099/sms", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := load(t, c.env, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got.SMSGatewayURL != c.url || got.SMSGatewayToken != c.token {
				t.Errorf("got URL %q token %q, want %q %q", got.SMSGatewayURL, got.SMSGatewayToken, c.url, c.token)
			}
		})
	}
}

func TestSMSGatewayValidation(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"plain http to another host", map[string]string{"MIMAMORI_SMS_GATEWAY_URL": "http://sms.example/v1"},
			`sms-gateway-url (MIMAMORI_SMS_GATEWAY_URL) must use https (http only to a loopback host such as 127.0.0.1), got http to "sms.example"`},
		{"another scheme", map[string]string{"MIMAMORI_SMS_GATEWAY_URL": "ftp://sms.example/v1"},
			`sms-gateway-url (MIMAMORI_SMS_GATEWAY_URL) must use https, got scheme "ftp"`},
		{"no scheme", map[string]string{"MIMAMORI_SMS_GATEWAY_URL": "sms.example/v1"},
			"sms-gateway-url (MIMAMORI_SMS_GATEWAY_URL) must be an absolute URL"},
		{"no host", map[string]string{"MIMAMORI_SMS_GATEWAY_URL": "https:///v1"},
			"sms-gateway-url (MIMAMORI_SMS_GATEWAY_URL) must be an absolute URL"},
		{"credentials in the URL", map[string]string{"MIMAMORI_SMS_GATEWAY_URL": "https://user:" + token + "@sms.example/v1"},
			"must not carry a user or password"},
		{"token without URL", map[string]string{"MIMAMORI_SMS_GATEWAY_TOKEN": token},
			"sms-gateway-token (MIMAMORI_SMS_GATEWAY_TOKEN) is set but sms-gateway-url is empty"},
		{"token with a line break", map[string]string{"MIMAMORI_SMS_GATEWAY_URL": "https://sms.example/v1",
			"MIMAMORI_SMS_GATEWAY_TOKEN": token + "\n"}, "sms-gateway-token (MIMAMORI_SMS_GATEWAY_TOKEN) must be printable ASCII"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(t, c.env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error %q shows the token", err)
			}
		})
	}
}

// `mimamori config` shows the gateway URL and masks the token.
func TestPrintMasksSMSGatewayToken(t *testing.T) {
	c, err := load(t, map[string]string{"MIMAMORI_SMS_GATEWAY_TOKEN": token},
		"--sms-gateway-url", "https://sms.example/v1/messages")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c.Print(&out)
	if strings.Contains(out.String(), token) {
		t.Fatalf("config printed the token:\n%s", out.String())
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			lines[f[0]] = f[1] + " " + f[2]
		}
	}
	if got := lines["sms-gateway-url"]; got != "MIMAMORI_SMS_GATEWAY_URL https://sms.example/v1/messages" {
		t.Errorf("sms-gateway-url line: %q", got)
	}
	if got := lines["sms-gateway-token"]; got != "MIMAMORI_SMS_GATEWAY_TOKEN ********" {
		t.Errorf("sms-gateway-token line: %q", got)
	}
}

// --help says what an empty URL means.
func TestSMSGatewayHelp(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	config.Register(fs)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	for _, want := range []string{"-sms-gateway-url", "empty: the embedded SMS sink", "env MIMAMORI_SMS_GATEWAY_URL",
		"-sms-gateway-token", "env MIMAMORI_SMS_GATEWAY_TOKEN"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// `mimamori config` masks what a URL carries as a secret: user info and
// query values, in a single URL or a list; the rest of the URL stays
// readable.
func TestPrintMasksSecretsInsideURLs(t *testing.T) {
	c, err := load(t, map[string]string{
		"MIMAMORI_SMS_GATEWAY_URL": "https://sms.example/v1/messages?api_key=k-1234&sig=abcd",
		"MIMAMORI_PORTAL_URL":      "https://acme:s3cr3t-pw@portal.example/",
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c.Print(&out)
	for _, secret := range []string{"acme", "s3cr3t-pw", "k-1234", "abcd"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("config printed %q:\n%s", secret, out.String())
		}
	}
	for _, want := range []string{"https://sms.example/v1/messages?api_key=********&sig=********",
		"https://********@portal.example/"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config does not show %q:\n%s", want, out.String())
		}
	}
}

func TestTrustedProxiesAndPublicMetrics(t *testing.T) {
	got, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.PortalTrustedProxies != nil || got.PublicMetrics {
		t.Fatalf("defaults: proxies %v public metrics %v, want none and false", got.PortalTrustedProxies, got.PublicMetrics)
	}
	got, err = load(t, map[string]string{"MIMAMORI_PORTAL_TRUSTED_PROXIES": "10.0.0.7, 10.1.0.0/16,2001:db8::/48"},
		"--public-metrics", "true")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got.PortalTrustedProxies {
		names = append(names, p.String())
	}
	if strings.Join(names, ",") != "10.0.0.7/32,10.1.0.0/16,2001:db8::/48" || !got.PublicMetrics {
		t.Fatalf("proxies %v public metrics %v", names, got.PublicMetrics)
	}
	for _, c := range []struct{ value, want string }{
		{"10.0.0.7,proxy.internal", `portal-trusted-proxies (from MIMAMORI_PORTAL_TRUSTED_PROXIES): want IP addresses or CIDR prefixes like 10.0.0.7 or 10.0.0.0/24, got "proxy.internal"`},
		{"0.0.0.0/0", `"0.0.0.0/0" trusts every address`},
		{"::/0", `"::/0" trusts every address`},
	} {
		_, err := load(t, map[string]string{"MIMAMORI_PORTAL_TRUSTED_PROXIES": c.value})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error saying %s", c.value, err, c.want)
		}
	}
}

// A command loads only the groups it reads: their settings are parsed
// and checked (a flag over its variable over the default), the others
// keep their zero value, unchecked.
func TestLoadGroups(t *testing.T) {
	env := map[string]string{"MIMAMORI_LOG_FORMAT": "json", "MIMAMORI_LOG_LEVEL": "debug", "MIMAMORI_KAFKA_PARTITIONS": "six"}
	got, err := config.LoadGroups([]config.Group{config.Log}, map[string]string{"log-level": "warn"},
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got.LogLevel != "warn" || got.LogFormat != "json" || got.KafkaPartitions != 0 || got.DataDir != "" {
		t.Errorf("got level %q format %q partitions %d data %q, want warn (flag), json (variable), and the unread groups zero",
			got.LogLevel, got.LogFormat, got.KafkaPartitions, got.DataDir)
	}
	_, err = config.LoadGroups([]config.Group{config.Data, config.Kafka}, nil, func(k string) string { return env[k] })
	if want := `kafka-partitions (from MIMAMORI_KAFKA_PARTITIONS): want a whole number, got "six"`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	var names []string
	for _, f := range config.Flags(config.Log) {
		names = append(names, f.Name+"="+f.Env+"="+f.Default)
	}
	if got, want := strings.Join(names, " "), "log-level=MIMAMORI_LOG_LEVEL=info log-format=MIMAMORI_LOG_FORMAT=text"; got != want {
		t.Errorf("Flags(Log) = %s, want %s", got, want)
	}
}
