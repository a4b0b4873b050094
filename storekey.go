package oauthtransport

// Store keys: every key a Transport reads or writes in its store is built
// here, and read back here, from four parts:
//
//	<WithStore key>[#dpop:<thumbprint>][/<WithKey key>][#resource:<hash>]
//
// The DPoP thumbprint keeps tokens bound to one key from a process holding
// another; "/" and the WithKey key separate a keyed Transport's keys; the
// resource hash keeps tokens for other resources (WithResource) apart.
// Beside them, <WithStore key>#dpop-key holds the DPoP key itself
// (DPoPKeyFromStore).

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// storeKeys builds the store keys of one Transport.
type storeKeys struct {
	base  string // the WithStore key, with "#dpop:" and the thumbprint under WithDPoP
	keyed bool   // a keyed Transport: keys carry "/" and the WithKey key
}

const (
	dpopMark     = "#dpop:"
	resourceMark = "#resource:"
	dpopKeyMark  = "#dpop-key"
)

// dpopKeyStoreKey is where DPoPKeyFromStore keeps the DPoP key of the
// Transport whose WithStore key is withStore.
func dpopKeyStoreKey(withStore string) string { return withStore + dpopKeyMark }

func newStoreKeys(withStore, dpopThumbprint string, keyed bool) storeKeys {
	k := storeKeys{base: withStore, keyed: keyed}
	if dpopThumbprint != "" {
		k.base += dpopMark + dpopThumbprint
	}
	return k
}

// of is the store key of name's token (the WithKey key; ignored with one
// token) from src; made when needed, not kept: a keyed Transport holds
// many keys.
func (k storeKeys) of(name string, src Source) string {
	scope := scopeOf(src)
	if k.keyed {
		return k.base + "/" + name + scope
	}
	return k.base + scope
}

// prefix is what every store key of a keyed Transport starts with.
func (k storeKeys) prefix() string { return k.base + "/" }

// name reads back the WithKey key of a keyed Transport's store key, as a
// store.Lister lists it.
func (k storeKeys) name(stored string) (string, bool) {
	name, ok := strings.CutPrefix(stored, k.prefix())
	if !ok {
		return "", false
	}
	if i := strings.LastIndex(name, resourceMark); i >= 0 {
		name = name[:i]
	}
	return name, true
}

// resourceScope is the suffix of the store key of tokens asked for
// resources: a hash of the sorted resources, "" for none.
func resourceScope(resources []string) string {
	if len(resources) == 0 {
		return ""
	}
	r := slices.Clone(resources)
	slices.Sort(r)
	sum := sha256.Sum256([]byte(strings.Join(slices.Compact(r), " ")))
	return resourceMark + hex.EncodeToString(sum[:6])
}

// scoped is a source whose tokens are for particular resources.
type scoped interface{ storeScope() string }

// scopeOf is src's store key suffix, "" for most.
func scopeOf(src Source) string {
	if s, ok := src.(scoped); ok {
		return s.storeScope()
	}
	return ""
}
