package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every mutant still finds its declaration and its text: a refactor that
// moves or rewrites the code a guarantee's mutant breaks fails here, in
// make test, not only in the long mutants run.
func TestEveryMutantApplies(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range mutants {
		if names[m.name] {
			t.Errorf("two mutants named %q", m.name)
		}
		names[m.name] = true
		if len(m.tests) == 0 {
			t.Errorf("%s: no test to catch it", m.name)
		}
		files, err := apply(root, m)
		if err != nil {
			t.Errorf("%s: %v", m.name, err)
			continue
		}
		for p, src := range files {
			old, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(old, src) {
				t.Errorf("%s: its edits change nothing in %s", m.name, p)
			}
		}
	}
}

// The anchor is the declaration, not the file: an edit whose text is in
// the package but outside the named declaration does not apply.
func TestMutantsAreAnchoredToTheirDeclaration(t *testing.T) {
	root, _ := filepath.Abs("../..")
	m := mutant{name: "x", pkg: "scripts/mutants", fn: "declares", edits: []edit{{old: "func recvName(e ast.Expr) string {", new: ""}}}
	if _, err := apply(root, m); err == nil || !strings.Contains(err.Error(), "occurs 0 times") {
		t.Fatalf("an edit outside its declaration applied (err %v)", err)
	}
	m.fn = "recvName"
	if _, err := apply(root, m); err != nil {
		t.Fatalf("in its declaration: %v", err)
	}
	m.fn = "noSuchFunc"
	if _, err := apply(root, m); err == nil {
		t.Fatal("a missing declaration applied")
	}
}
