package config_test

import (
	"strings"
	"testing"
	"time"
)

func TestNotifyRetrySettings(t *testing.T) {
	got, err := load(t, map[string]string{"MIMAMORI_NOTIFY_MAIL_GIVE_UP": "24h"}, "--notify-webhook-timeout", "3s")
	if err != nil {
		t.Fatal(err)
	}
	if got.NotifyWebhookTimeout != 3*time.Second || got.NotifyWebhookGiveUp != time.Hour || got.NotifyMailGiveUp != 24*time.Hour {
		t.Errorf("webhook timeout %s, webhook give-up %s, mail give-up %s; want 3s, the default 1h, 24h",
			got.NotifyWebhookTimeout, got.NotifyWebhookGiveUp, got.NotifyMailGiveUp)
	}
	for _, bad := range []struct{ env, value, want string }{
		{"MIMAMORI_NOTIFY_WEBHOOK_TIMEOUT", "0s", "notify-webhook-timeout (MIMAMORI_NOTIFY_WEBHOOK_TIMEOUT) must be a positive duration, got 0s"},
		{"MIMAMORI_NOTIFY_WEBHOOK_GIVE_UP", "-1h", "notify-webhook-give-up (MIMAMORI_NOTIFY_WEBHOOK_GIVE_UP) must be a positive duration, got -1h0m0s"},
		{"MIMAMORI_NOTIFY_MAIL_GIVE_UP", "four hours", `notify-mail-give-up (from MIMAMORI_NOTIFY_MAIL_GIVE_UP): want a duration like 10ms, got "four hours"`},
	} {
		if _, err := load(t, map[string]string{bad.env: bad.value}); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s=%s: error %v, want %q", bad.env, bad.value, err, bad.want)
		}
	}
}
