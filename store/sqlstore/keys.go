package sqlstore

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// maxPlainKey is the longest key stored as it is: well within an index
// entry on both databases.
const maxPlainKey = 200

// encodeKey maps any key a Store accepts to text a TEXT column and its
// index take: the key itself when it is plain, else "~" and the unpadded
// base64url of its SHA-256 (keys are never listed, so the mapping need
// not be reversible; plain keys never start with "~", so the two never
// collide).
func encodeKey(key string) string {
	if len(key) <= maxPlainKey && utf8.ValidString(key) && !strings.ContainsRune(key, 0) && !strings.HasPrefix(key, "~") {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "~" + base64.RawURLEncoding.EncodeToString(sum[:])
}
