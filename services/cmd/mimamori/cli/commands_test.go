package cli

import (
	"io"
	"slices"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/mimamori/mimamori/services/cmd/mimamori/app"
)

// Every leaf of the command tree runs, every parent names its
// subcommands when none is given, and `serve` has one subcommand per
// service.
func TestCommandTree(t *testing.T) {
	k, err := newParser(&root{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		target := n.Target.Addr().Interface()
		if len(n.Children) == 0 {
			if _, ok := target.(runner); !ok {
				t.Errorf("%s has no subcommands and does not run", n.FullPath())
			}
		} else if _, ok := target.(parent); !ok && n != k.Model.Node {
			t.Errorf("%s has subcommands but says nothing when none is given", n.FullPath())
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(k.Model.Node)

	var services []string
	for _, c := range k.Model.Children {
		if c.Name == "serve" {
			for _, s := range c.Children {
				services = append(services, s.Name)
			}
		}
	}
	if !slices.Equal(services, app.Services) {
		t.Errorf("serve's subcommands %v, want the services %v", services, app.Services)
	}
}
