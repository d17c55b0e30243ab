// Package mailbox is the embedded mail server of mimamori: an in-process
// SMTP server (emersion/go-smtp) that stores every message it accepts and
// shows them on a small local web page, so `mimamori run` and the demo
// send real mail over real SMTP without an outside relay. Tests use it as
// the SMTP server they check mail against.
package mailbox

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one accepted message.
type Message struct {
	Seq        int
	From       string
	To         []string // envelope recipients
	Subject    string   // decoded
	MessageID  string   // without the angle brackets
	Date       string
	Body       string // decoded text
	Raw        []byte
	ReceivedAt time.Time
}

// Mailbox is the SMTP server and its store.
type Mailbox struct {
	srv *smtp.Server
	ln  net.Listener

	mu   sync.Mutex
	msgs []Message
	// reject, when set, decides per recipient whether RCPT is refused
	// (tests: temporary 4xx and permanent 5xx failures).
	reject func(rcpt string) error
	// onAccept is called after a message is stored (benchmarks).
	onAccept func(Message)
	// texts lists the text messages of an embedded SMS gateway, shown
	// beside the mail.
	texts func() []Text
}

// Text is one text message (SMS) kept by an embedded gateway.
type Text struct {
	To   string
	Body string
	At   time.Time
}

// ShowTexts makes the page list the text messages f returns (oldest
// first), so that in embedded mode a person can read the SMS codes of
// 2-step verification, as they read the mail.
func (m *Mailbox) ShowTexts(f func() []Text) {
	m.mu.Lock()
	m.texts = f
	m.mu.Unlock()
}

// Start listens for SMTP on addr ("127.0.0.1:0" picks a port).
func Start(addr string) (*Mailbox, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mailbox: listen on %s: %w", addr, err)
	}
	m := &Mailbox{ln: ln}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{m: m}, nil }))
	s.Domain = "mimamori.local"
	s.AllowInsecureAuth = true
	s.MaxMessageBytes = 10 << 20
	s.ReadTimeout, s.WriteTimeout = time.Minute, time.Minute
	s.EnableSMTPUTF8 = true
	m.srv = s
	go func() { _ = s.Serve(ln) }()
	return m, nil
}

// Addr is the SMTP address (host:port).
func (m *Mailbox) Addr() string { return m.ln.Addr().String() }

// Close stops the server.
func (m *Mailbox) Close() error { return m.srv.Close() }

// SetReject installs a per-recipient refusal (nil to accept all).
func (m *Mailbox) SetReject(f func(rcpt string) error) {
	m.mu.Lock()
	m.reject = f
	m.mu.Unlock()
}

// OnAccept installs a hook called after each stored message.
func (m *Mailbox) OnAccept(f func(Message)) {
	m.mu.Lock()
	m.onAccept = f
	m.mu.Unlock()
}

// Messages returns a copy of every message so far, oldest first.
func (m *Mailbox) Messages() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.msgs...)
}

// TempFailure and PermFailure build SMTP replies for SetReject.
func TempFailure(msg string) error {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: msg}
}
func PermFailure(msg string) error {
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: msg}
}

type session struct {
	m    *Mailbox
	from string
	to   []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.mu.Lock()
	rej := s.m.reject
	s.m.mu.Unlock()
	if rej != nil {
		if err := rej(to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	msg := parse(raw)
	msg.From, msg.To, msg.ReceivedAt = s.from, append([]string(nil), s.to...), time.Now()
	s.m.mu.Lock()
	msg.Seq = len(s.m.msgs) + 1
	s.m.msgs = append(s.m.msgs, msg)
	hook := s.m.onAccept
	s.m.mu.Unlock()
	if hook != nil {
		hook(msg)
	}
	return nil
}

// parse decodes the headers and the text body that mimamori's mail has
// (one text/plain part, quoted-printable or base64). Anything else is shown raw.
func parse(raw []byte) Message {
	msg := Message{Raw: raw}
	pm, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		msg.Body = string(raw)
		return msg
	}
	dec := new(mime.WordDecoder)
	msg.Subject, err = dec.DecodeHeader(pm.Header.Get("Subject"))
	if err != nil {
		msg.Subject = pm.Header.Get("Subject")
	}
	msg.MessageID = strings.Trim(pm.Header.Get("Message-Id"), "<> ")
	msg.Date = pm.Header.Get("Date")
	body, _ := io.ReadAll(pm.Body)
	switch strings.ToLower(pm.Header.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		if b, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err == nil {
			body = b
		}
	case "base64":
		if b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(body)), "")); err == nil {
			body = b
		}
	}
	msg.Body = strings.ReplaceAll(string(body), "\r\n", "\n")
	return msg
}

var page = template.Must(template.New("mailbox").Parse(`<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>mimamori mailbox</title>
<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .8em;text-align:left;border-bottom:1px solid #ddd}pre{white-space:pre-wrap;background:#f6f6f6;padding:1em}</style>
</head><body>
{{if .One}}{{with .One}}<p><a href="/">← 受信箱 / inbox</a></p>
<h1>{{.Subject}}</h1>
<table><tr><th>From</th><td>{{.From}}</td></tr><tr><th>To</th><td>{{range .To}}{{.}} {{end}}</td></tr>
<tr><th>Date</th><td>{{.Date}}</td></tr><tr><th>Message-ID</th><td>{{.MessageID}}</td></tr></table>
<pre>{{.Body}}</pre>{{end}}
{{else}}<h1>mimamori mailbox</h1><p>{{len .All}} messages accepted by the embedded SMTP server at {{.Addr}}</p>
<table><tr><th>#</th><th>received</th><th>to</th><th>subject</th></tr>
{{range .All}}<tr><td>{{.Seq}}</td><td>{{.ReceivedAt.Format "2006-01-02 15:04:05"}}</td><td>{{range .To}}{{.}} {{end}}</td><td><a href="/messages/{{.Seq}}">{{.Subject}}</a></td></tr>
{{end}}</table>
{{if .Texts}}<h2 id="sms">SMS</h2><p>{{len .Texts}} text messages kept by the embedded SMS gateway (nothing is sent)</p>
<table><tr><th>sent</th><th>to</th><th>text</th></tr>
{{range .Texts}}<tr><td>{{.At.Format "2006-01-02 15:04:05"}}</td><td>{{.To}}</td><td>{{.Body}}</td></tr>
{{end}}</table>{{end}}{{end}}
</body></html>`))

// Handler serves the mailbox page: GET / lists the messages newest first
// (and the text messages, if ShowTexts was called), GET /messages/{n}
// shows one.
func (m *Mailbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		all := m.Messages()
		slices.Reverse(all)
		var texts []Text
		m.mu.Lock()
		f := m.texts
		m.mu.Unlock()
		if f != nil {
			texts = f()
			slices.Reverse(texts)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, map[string]any{"All": all, "Addr": m.Addr(), "Texts": texts})
	})
	mux.HandleFunc("GET /messages/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscan(r.PathValue("n"), &n); err != nil {
			http.NotFound(w, r)
			return
		}
		all := m.Messages()
		if n < 1 || n > len(all) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, map[string]any{"One": all[n-1]})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, `{"status":"ok"}`) })
	return mux
}
