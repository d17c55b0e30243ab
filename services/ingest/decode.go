package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/mimamori/mimamori/events"
)

// identity is who sent a request, from its credential, never from its body.
type identity struct {
	deviceID   string
	customerID string
}

// readBody checks the media type and encoding and returns the body,
// decompressed. Sizes are counted as the bytes arrive, compressed and
// decompressed, so neither a large body nor a gzip bomb gets past the limits.
func readBody(r *http.Request, cfg Config) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return nil, errorf(kindUnsupportedMedia, "", "Content-Type must be application/json, got %q", truncate(ct, 60))
	}
	var gz bool
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz = true
	default:
		return nil, errorf(kindUnsupportedMedia, "", "Content-Encoding %q is not supported (send gzip or no encoding)", truncate(enc, 40))
	}
	wireLimit, what := cfg.MaxBodyBytes, "the body"
	if gz {
		wireLimit, what = cfg.MaxWireBytes, "the compressed body"
	}
	tooLarge := func(limit int64, what string) error {
		return errorf(kindTooLarge, "", "%s exceeds the limit of %s", what, size(limit))
	}
	if r.ContentLength > wireLimit {
		return nil, tooLarge(wireLimit, what)
	}
	wire, err := io.ReadAll(io.LimitReader(r.Body, wireLimit+1))
	if err != nil {
		return nil, &apiError{kind: kindBadRequest, msg: "could not read the body", cause: err}
	}
	if int64(len(wire)) > wireLimit {
		return nil, tooLarge(wireLimit, what)
	}
	if !gz {
		return wire, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(wire))
	if err != nil {
		return nil, errorf(kindBadRequest, "", "Content-Encoding is gzip but the body is not valid gzip: %v", err)
	}
	body, err := io.ReadAll(io.LimitReader(zr, cfg.MaxBodyBytes+1))
	if int64(len(body)) > cfg.MaxBodyBytes {
		return nil, tooLarge(cfg.MaxBodyBytes, "the body after decompression")
	}
	if err != nil {
		return nil, errorf(kindBadRequest, "", "Content-Encoding is gzip but the body is not valid gzip: %v", err)
	}
	return body, nil
}

// alertsRequest is the body of POST /v1/alerts. Alerts stay raw at first so
// each can be decoded on its own and its errors can name its index.
type alertsRequest struct {
	Alerts []json.RawMessage `json:"alerts"`
}

// alertBatch is a request's alerts as they would be published, each once.
type alertBatch struct {
	envs       []events.Envelope
	index      []int // index[i] is the position of envs[i] in the request
	duplicates int   // repeats of an alert earlier in the request, dropped
}

// decodeAlerts turns a body into the envelopes to publish: every alert
// decoded strictly, validated, checked against the sender, stamped, and
// deduplicated by id. One bad alert fails the whole request, and so does
// an id that comes twice with different content (409).
func decodeAlerts(body []byte, who identity, now time.Time, cfg Config) (alertBatch, error) {
	var req alertsRequest
	if err := decodeStrict(body, &req, ""); err != nil {
		return alertBatch{}, err
	}
	switch n := len(req.Alerts); {
	case n == 0:
		return alertBatch{}, errorf(kindBadRequest, "alerts", "alerts: send 1 to %d alerts, got none", cfg.MaxAlerts)
	case n > cfg.MaxAlerts:
		return alertBatch{}, errorf(kindTooLarge, "alerts", "alerts: at most %d alerts per request, got %d", cfg.MaxAlerts, n)
	}
	seen := make(map[string]int, len(req.Alerts)) // id → its position in b.envs
	b := alertBatch{envs: make([]events.Envelope, 0, len(req.Alerts)), index: make([]int, 0, len(req.Alerts))}
	for i, raw := range req.Alerts {
		path := "alerts[" + strconv.Itoa(i) + "]"
		var a events.Alert
		if err := decodeStrict(raw, &a, path); err != nil {
			return alertBatch{}, err
		}
		if err := checkFromDevice(a.ValidateFromDevice(), path); err != nil {
			return alertBatch{}, err
		}
		if err := checkSender(a.DeviceID, a.CustomerID, who, path); err != nil {
			return alertBatch{}, err
		}
		if a.DetectedAt.After(now.Add(cfg.MaxFuture)) {
			return alertBatch{}, errorf(kindBadRequest, join(path, "detected_at"), "%s: %s is more than %s ahead of the server clock (%s)",
				join(path, "detected_at"), a.DetectedAt.Format(time.RFC3339), cfg.MaxFuture, now.UTC().Format(time.RFC3339))
		}
		a.DeviceID, a.CustomerID, a.ReceivedAt = who.deviceID, who.customerID, now.UTC()
		e, err := events.New(Source, &a, now)
		if err != nil {
			return alertBatch{}, &apiError{kind: kindBadRequest, field: path, msg: path + ": " + err.Error(), cause: err}
		}
		if j, ok := seen[a.ID]; ok {
			// Stamped alike, so the same content is the same bytes.
			if !bytes.Equal(b.envs[j].Data, e.Data) {
				f := join(path, "id")
				return alertBatch{}, errorf(kindConflict, f, "%s: alert %s is also alerts[%d], with other content; an alert is written once (a new alert needs a new id)",
					f, a.ID, b.index[j])
			}
			b.duplicates++
			continue
		}
		seen[a.ID] = len(b.envs)
		b.envs, b.index = append(b.envs, e), append(b.index, i)
	}
	return b, nil
}

// decodeHeartbeat is decodeAlerts for one heartbeat.
func decodeHeartbeat(body []byte, who identity, now time.Time, cfg Config) (events.Envelope, error) {
	var h events.Heartbeat
	if err := decodeStrict(body, &h, ""); err != nil {
		return events.Envelope{}, err
	}
	if err := checkFromDevice(h.ValidateFromDevice(), ""); err != nil {
		return events.Envelope{}, err
	}
	if err := checkSender(h.DeviceID, h.CustomerID, who, ""); err != nil {
		return events.Envelope{}, err
	}
	if h.SentAt.After(now.Add(cfg.MaxFuture)) {
		return events.Envelope{}, errorf(kindBadRequest, "sent_at", "sent_at: %s is more than %s ahead of the server clock (%s)",
			h.SentAt.Format(time.RFC3339), cfg.MaxFuture, now.UTC().Format(time.RFC3339))
	}
	h.DeviceID, h.CustomerID, h.ReceivedAt = who.deviceID, who.customerID, now.UTC()
	e, err := events.New(Source, &h, now)
	if err != nil {
		return events.Envelope{}, &apiError{kind: kindBadRequest, msg: err.Error(), cause: err}
	}
	return e, nil
}

func checkFromDevice(err error, path string) error {
	if err == nil {
		return nil
	}
	var fe *events.FieldError
	if errors.As(err, &fe) {
		f := join(path, fe.Field)
		return errorf(kindBadRequest, f, "%s: %s", f, fe.Problem)
	}
	return &apiError{kind: kindBadRequest, field: path, msg: prefixed(path, err.Error()), cause: err}
}

// checkSender refuses a body that claims to come from another device or
// customer than the credential's: a device may only speak for itself.
func checkSender(deviceID, customerID string, who identity, path string) error {
	if deviceID != "" && deviceID != who.deviceID {
		f := join(path, "device_id")
		return errorf(kindForbidden, f, "%s: %q is not the device this credential belongs to", f, truncate(deviceID, 40))
	}
	if customerID != "" && customerID != who.customerID {
		f := join(path, "customer_id")
		return errorf(kindForbidden, f, "%s: %q is not the customer this device is assigned to", f, truncate(customerID, 40))
	}
	return nil
}

// decodeStrict decodes exactly one JSON value with no unknown fields and
// nothing after it, naming the place of any problem under path.
func decodeStrict(data []byte, v any, path string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, path)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(kindBadRequest, path, "%s", prefixed(path, "unexpected data after the JSON value"))
	}
	return nil
}

func jsonError(err error, path string) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var parse *time.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return errorf(kindBadRequest, path, "%s", prefixed(path, "empty body, want a JSON object"))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(kindBadRequest, path, "%s", prefixed(path, "invalid JSON: the body ends in the middle of a value"))
	case errors.As(err, &syn):
		return errorf(kindBadRequest, path, "%s", prefixed(path, fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))))
	case errors.As(err, &typ):
		f := join(path, typ.Field)
		if typ.Field == "" && path == "" {
			return errorf(kindBadRequest, "", "the body must be a JSON object, got JSON %s", typ.Value)
		}
		return errorf(kindBadRequest, f, "%s: must be %s, got JSON %s", f, describe(typ.Type), typ.Value)
	case errors.As(err, &parse):
		return errorf(kindBadRequest, path, "%s", prefixed(path, "a time is not RFC 3339 (like 2026-04-01T09:30:00Z): "+truncate(parse.Value, 40)))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		if uerr != nil {
			name = "?"
		}
		f := join(path, name)
		return errorf(kindBadRequest, f, "%s: unknown field", truncate(f, 120))
	}
	return &apiError{kind: kindBadRequest, field: path, msg: prefixed(path, "invalid JSON: "+truncate(err.Error(), 200)), cause: err}
}

func describe(t reflect.Type) string {
	if t == reflect.TypeFor[time.Time]() {
		return "an RFC 3339 time string"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

func join(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}

func prefixed(path, msg string) string {
	if path == "" {
		return msg
	}
	return path + ": " + msg
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
