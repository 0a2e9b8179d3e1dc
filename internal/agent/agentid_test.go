package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// An agent's id is drawn once and kept: the same on every start from the
// same data directory, another in another one, and a damaged file is
// replaced rather than stopping the agent.
func TestAgentIDStaysWithItsDataDirectory(t *testing.T) {
	dir := t.TempDir()
	id, err := loadAgentID(dir)
	if err != nil || !validAgentID(id) {
		t.Fatalf("first id %q, %v", id, err)
	}
	again, err := loadAgentID(dir)
	if err != nil || again != id {
		t.Fatalf("second start: %q, %v; want %q", again, err, id)
	}
	other, err := loadAgentID(t.TempDir())
	if err != nil || other == id {
		t.Fatalf("another data directory: %q, %v (first %q)", other, err, id)
	}
	if err := os.WriteFile(filepath.Join(dir, agentIDFile), []byte("not an id\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh, err := loadAgentID(dir)
	if err != nil || !validAgentID(fresh) || fresh == id {
		t.Fatalf("after damage: %q, %v", fresh, err)
	}
	if kept, _ := loadAgentID(dir); kept != fresh {
		t.Fatalf("the replacement was not kept: %q then %q", fresh, kept)
	}
}
