package agent

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/logpipe/logpipe/internal/platform/fsutil"
)

// agentIDFile is where an agent keeps its id, in its data directory.
const agentIDFile = "agent.id"

// loadAgentID reads the agent's id (ECS agent.id) from dir, drawing and
// saving one the first time: it names the agent in every record and its
// inventory entry, the same across restarts and changes of address, as
// Filebeat's id in its data path. A file that does not hold an id is
// replaced, and says so in the error only if it cannot be.
func loadAgentID(dir string) (string, error) {
	path := filepath.Join(dir, agentIDFile)
	b, err := os.ReadFile(path)
	if err == nil && validAgentID(strings.TrimSpace(string(b))) {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading agent id %s: %w", path, err)
	}
	id := newAgentID()
	if err := fsutil.WriteAtomic(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("saving agent id %s: %w", path, err)
	}
	return id, nil
}

// newAgentID draws a random (version 4) UUID.
func newAgentID() string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// validAgentID reports whether s is a UUID in its canonical form.
func validAgentID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
