package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// cursorSealer makes pagination cursors opaque and tamper-evident: a cursor
// is the last row's sort key, sealed with AES-GCM under the installation's
// key together with a digest of the query it belongs to. A cursor that was
// changed, or comes from another query, does not open.
type cursorSealer struct{ aead cipher.AEAD }

func newCursorSealer(key []byte) (*cursorSealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &cursorSealer{aead: aead}, nil
}

// cursorPos is a position in an ordering: the sort value of a row (none
// where the row has none, e.g. a run not yet completed), whether it is an
// unfinished run when those come first, and its uid.
type cursorPos struct {
	Time       *time.Time `json:"t,omitempty"`
	Int        *int64     `json:"i,omitempty"`
	Text       *string    `json:"s,omitempty"`
	Unfinished *bool      `json:"f,omitempty"`
	UID        string     `json:"u"`
}

// rank is the sort key of Unfinished: unfinished runs (0) first.
func (c cursorPos) rank() int64 {
	if c.Unfinished != nil && *c.Unfinished {
		return 0
	}
	return 1
}

func (c *cursorSealer) seal(queryDigest []byte, pos cursorPos) string {
	plain, _ := json.Marshal(pos)
	nonce := make([]byte, c.aead.NonceSize())
	_, _ = rand.Read(nonce)
	sealed := c.aead.Seal(nonce, nonce, plain, queryDigest)
	return base64.RawURLEncoding.EncodeToString(sealed)
}

func (c *cursorSealer) open(queryDigest []byte, cursor string) (cursorPos, error) {
	var pos cursorPos
	invalid := fmt.Errorf("%w: the cursor is not valid for this query: pass back an unchanged cursor from the same query (same parent, filter and order), or start without one", ErrInvalidArgument)
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) < c.aead.NonceSize()+c.aead.Overhead() || len(cursor) > 1024 {
		return pos, invalid
	}
	nonce, body := raw[:c.aead.NonceSize()], raw[c.aead.NonceSize():]
	plain, err := c.aead.Open(nil, nonce, body, queryDigest)
	if err != nil {
		return pos, invalid
	}
	if err := json.Unmarshal(plain, &pos); err != nil {
		return pos, invalid
	}
	return pos, nil
}

// digest binds cursors to everything that shapes a list query.
func digest(parts ...any) []byte {
	b, _ := json.Marshal(parts)
	sum := sha256.Sum256(b)
	return sum[:]
}
