package accounts

import (
	"crypto/subtle"
	"strings"
)

// Recovery codes are 16 characters of randomText's alphabet of 32 (80
// bits), shown in four groups of four. They are stored as argon2id hashes
// with the parameters of passwords, one random salt per set of ten:
// entering a code costs one argon2 computation, as a password does, not
// one per code of the set. A stored hash is the PHC string of a password
// hash with its parameters separated by ':' instead of ',', because the
// event joins the hashes of a set with commas. Sets made before (10
// characters, 50 bits, SHA-256 hex) stay usable until they are used up or
// replaced.
const (
	recoveryCodeLen = 16
	recoveryCodeSet = 10
)

// recoveryCodes returns a fresh set of codes and their hashes joined by
// commas (AccountSecondFactorChanged.RecoveryCodeHashes).
func recoveryCodes() ([]string, string) {
	salt := randomBytes(16)
	codes := make([]string, 0, recoveryCodeSet)
	hashes := make([]string, 0, recoveryCodeSet)
	for range recoveryCodeSet {
		raw := randomText(recoveryCodeLen)
		codes = append(codes, raw[:4]+"-"+raw[4:8]+"-"+raw[8:12]+"-"+raw[12:])
		hashes = append(hashes, strings.ReplaceAll(hashWithSalt(raw, salt), ",", ":"))
	}
	return codes, strings.Join(hashes, ",")
}

// isOneTimeCode tells a code of an app or an SMS (six digits) from a
// recovery code.
func isOneTimeCode(code string) bool {
	if len(code) != 6 {
		return false
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// matchRecoveryCode returns the stored hash of the unused recovery code
// typed (in any letter case, with or without its dashes and spaces).
func matchRecoveryCode(hashes []string, typed string) (string, bool) {
	legacy := sha256Hex(strings.ToLower(typed)) // the old codes were hashed as shown
	canon := strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(typed))
	keys := map[string][]byte{} // one derivation per salt
	found := ""
	for _, h := range hashes {
		if len(h) == 64 { // SHA-256 hex: a set of before
			if subtle.ConstantTimeCompare([]byte(h), []byte(legacy)) == 1 {
				found = h
			}
			continue
		}
		p, ok := parsePHC(strings.ReplaceAll(h, ":", ","))
		if !ok || len(canon) != recoveryCodeLen {
			continue
		}
		k, done := keys[p.params]
		if !done {
			k = p.derive(canon)
			keys[p.params] = k
		}
		if subtle.ConstantTimeCompare(k, p.key) == 1 {
			found = h
		}
	}
	return found, found != ""
}
