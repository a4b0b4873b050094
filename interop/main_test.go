package interop

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runThenRemove{m},
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

// runThenRemove runs the tests, then removes what they built for the
// whole run (the Hydra binary).
type runThenRemove struct{ m *testing.M }

func (r runThenRemove) Run() int {
	defer removeHydraBuild()
	return r.m.Run()
}
