package secret

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"sync/atomic"

	"github.com/kiehook/kiehook/functions/internal/envconf"
)

// Tokens are the accepted values of a bearer secret (the callback's
// ?token=, the reader's Authorization): one, or several while it is
// rotated. They may be replaced while requests are checked.
type Tokens struct {
	sums atomic.Pointer[[][sha256.Size]byte]
}

// Set replaces the tokens with list: one token, or several separated by
// commas, white space around each trimmed. A list without a token is
// refused and the tokens held are kept.
func (t *Tokens) Set(list string) error {
	var sums [][sha256.Size]byte
	for _, tok := range envconf.Values(list) {
		sums = append(sums, sha256.Sum256([]byte(tok)))
	}
	if len(sums) == 0 {
		return errors.New("no token in the list")
	}
	t.sums.Store(&sums)
	return nil
}

// Match compares digests, with every token held, so that neither content
// nor length nor which token matched leaks.
func (t *Tokens) Match(got string) bool {
	sums := t.sums.Load()
	if sums == nil {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	match := 0
	for _, want := range *sums {
		match |= subtle.ConstantTimeCompare(sum[:], want[:])
	}
	return match == 1
}
