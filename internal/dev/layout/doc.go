// Package layout holds the test that keeps the import rules of the
// README's "Layout": who may import whom. It has no code of its own.
package layout
