package daemon

import (
	"github.com/meshhook/meshhook-alerts/config"
	"github.com/meshhook/meshhook-alerts/internal/seal"
)

// Keyring builds the keyring of sealed values from the secrets section:
// the current key (nil when none is set: the keyring opens but cannot
// seal) and the previous ones. The daemon builds it once and hands the
// same keyring to the rule opener and the API.
func Keyring(s config.Secrets) (*seal.Keyring, error) {
	cur, prev, err := s.Keys()
	if err != nil {
		return nil, err
	}
	return seal.NewKeyring(cur, prev...)
}
