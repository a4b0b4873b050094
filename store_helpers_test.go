package oauthtransport_test

import "github.com/oauthtransport/oauthtransport/store"

func newMemoryStore() *store.Memory { return store.NewMemory() }
