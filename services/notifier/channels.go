package notifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/mimamori/mimamori/events/retry"
	"github.com/mimamori/mimamori/services/smtp"
)

// permanent marks a failure that retrying cannot cure (a refused webhook;
// a 5xx reply of the relay is an smtp.PermanentError). Anything else is
// retried with backoff.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func isPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) || smtp.IsPermanent(err)
}

// later is a temporary failure whose server said when to try again
// (Retry-After).
type later struct {
	error
	after time.Duration
}

func (l later) Unwrap() error { return l.error }

// retryAfter is how long err's server asked to wait, or 0.
func retryAfter(err error) time.Duration {
	var l later
	if errors.As(err, &l) {
		return l.after
	}
	return 0
}

// WebhookSecret derives a customer's webhook signing secret from the
// notifier's key; bumping version rotates it. The secret is never logged
// nor written to the log.
func WebhookSecret(key []byte, customerID string, version int) string {
	h := hmac.New(sha256.New, key)
	fmt.Fprintf(h, "webhook|%s|%d", customerID, version)
	return "whsec_" + hex.EncodeToString(h.Sum(nil))
}

// Sign is the X-Mimamori-Signature of a webhook body:
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func Sign(secret, timestamp string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(timestamp))
	h.Write([]byte("."))
	h.Write(body)
	return "sha256=" + hex.EncodeToString(h.Sum(nil))
}

// Webhook header names.
const (
	HeaderSignature = "X-Mimamori-Signature"
	HeaderTimestamp = "X-Mimamori-Timestamp"
	HeaderDelivery  = "X-Mimamori-Delivery" // the notification ID: receivers deduplicate on it
)

func postWebhook(ctx context.Context, hc *http.Client, url, secret, deliveryID string, body []byte, now time.Time) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return permanent{fmt.Errorf("webhook request: %w", err)}
	}
	stamp := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mimamori-webhook/1")
	req.Header.Set(HeaderTimestamp, stamp)
	req.Header.Set(HeaderDelivery, deliveryID)
	req.Header.Set(HeaderSignature, Sign(secret, stamp, body))
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		err := fmt.Errorf("webhook: HTTP %d", resp.StatusCode)
		if d := retry.RetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return later{err, d}
		}
		return err
	default:
		return permanent{fmt.Errorf("webhook: HTTP %d", resp.StatusCode)}
	}
}
