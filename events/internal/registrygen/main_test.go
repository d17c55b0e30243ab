package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The committed registry is the one the source makes: a type added,
// renamed or removed without go generate fails here (and in CI).
func TestRegistryIsCurrent(t *testing.T) {
	dir := filepath.Join("..", "..")
	want, err := generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("events/%s is stale: run go generate ./events/...", File)
	}
}
