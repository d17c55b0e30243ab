package mailbox_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mimamori/mimamori/services/mailbox"
	"github.com/mimamori/mimamori/services/smtp"
)

// A message sent over SMTP is stored, decoded (Japanese subject and body)
// and shown on the mailbox page: the list and the message.
func TestStoresAndShowsMail(t *testing.T) {
	box, err := mailbox.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	_, port, _ := net.SplitHostPort(box.Addr())
	p, _ := strconv.Atoi(port)
	m, err := smtp.New(smtp.Config{Host: "127.0.0.1", Port: p, Security: smtp.SecurityNone, From: "mimamori <noreply@m.test>"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), "admin@shop.test", "nf_1", "【mimamori ★★★】重要アラート", "本文です。\n<script>x</script>", time.Now()); err != nil {
		t.Fatal(err)
	}
	msgs := box.Messages()
	if len(msgs) != 1 || msgs[0].Subject != "【mimamori ★★★】重要アラート" || !strings.Contains(msgs[0].Body, "本文です。") ||
		msgs[0].MessageID != "nf_1@m.test" || msgs[0].To[0] != "admin@shop.test" {
		t.Fatalf("stored %+v", msgs)
	}
	srv := httptest.NewServer(box.Handler())
	defer srv.Close()
	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return string(b)
	}
	if list := get("/"); !strings.Contains(list, "【mimamori ★★★】重要アラート") || !strings.Contains(list, `href="/messages/1"`) {
		t.Fatalf("list page:\n%s", list)
	}
	one := get("/messages/1")
	if !strings.Contains(one, "本文です。") || strings.Contains(one, "<script>x") || !strings.Contains(one, "nf_1@m.test") {
		t.Fatalf("message page (must show the body, escaped):\n%s", one)
	}
	resp, err := http.Get(srv.URL + "/messages/2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing message: %d", resp.StatusCode)
	}
}

// The text messages of an embedded SMS gateway are listed newest first,
// escaped, below the mail; without them the page has no SMS section.
func TestShowsTexts(t *testing.T) {
	box, err := mailbox.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	srv := httptest.NewServer(box.Handler())
	defer srv.Close()
	page := func() string {
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if p := page(); strings.Contains(p, `id="sms"`) {
		t.Fatalf("SMS section without a gateway:\n%s", p)
	}
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	box.ShowTexts(func() []mailbox.Text {
		return []mailbox.Text{{To: "+819011112222", Body: "認証コード 123456", At: at},
			{To: "+819033334444", Body: "code 654321 <b>", At: at.Add(time.Minute)}}
	})
	p := page()
	first, second := strings.Index(p, "654321"), strings.Index(p, "123456")
	if !strings.Contains(p, `id="sms"`) || first < 0 || second < 0 || first > second ||
		strings.Contains(p, "<b>") || !strings.Contains(p, "819011112222") {
		t.Fatalf("SMS section (newest first, escaped):\n%s", p)
	}
}
