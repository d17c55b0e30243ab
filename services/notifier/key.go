package notifier

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreateKey returns the webhook key kept in path, creating a random
// one (mode 0600) the first time. The key never leaves the file and the
// process: customers get secrets derived from it (WebhookSecret).
func LoadOrCreateKey(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		k, derr := hex.DecodeString(strings.TrimSpace(string(raw)))
		if derr != nil || len(k) < 16 {
			return nil, fmt.Errorf("webhook key %s: not a hex key of at least 16 bytes", path)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	return k, nil
}

// KeyFile is where the embedded default keeps the webhook key.
func KeyFile(dataDir string) string { return filepath.Join(dataDir, "notify", "webhook.key") }
