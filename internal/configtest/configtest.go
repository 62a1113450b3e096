// Package configtest loads pools from YAML into a server for in-process tests.
package configtest

import (
	"testing"

	"github.com/quotad/quotad/config"
)

// Applier is what takes a configuration: a *server.Server (an interface, so
// that the server package's own tests can use Apply without an import cycle).
type Applier interface {
	Apply(config.Snapshot) error
}

// Apply parses yaml as a pools file and applies its pools to srv as snapshot
// version "test", failing t on any error.
func Apply(t testing.TB, srv Applier, yaml string) {
	t.Helper()
	file, err := config.ParseFile([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := config.NewSnapshot(file.Pools, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Apply(snap); err != nil {
		t.Fatal(err)
	}
}
