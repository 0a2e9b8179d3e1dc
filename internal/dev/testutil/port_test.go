package testutil

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// A port reserved by one process is not handed to another.
func TestReservedPortIsNotHandedToAnotherProcess(t *testing.T) {
	if os.Getenv("PORTCHILD") != "" {
		p, _ := strconv.Atoi(os.Getenv("PORTCHILD"))
		if reservePort(p) {
			os.Exit(3)
		}
		os.Exit(0)
	}
	p := FreePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestReservedPortIsNotHandedToAnotherProcess$")
	cmd.Env = append(os.Environ(), "PORTCHILD="+strconv.Itoa(p))
	if err := cmd.Run(); err != nil {
		t.Fatalf("another process reserved port %d this one holds: %v", p, err)
	}
}
