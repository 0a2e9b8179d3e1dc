package memtune

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// rssFile is the process's resident file-backed memory, from
// /proc/self/status.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("RssFile:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// touchBinary reads a byte of every page the executable maps read-only,
// so that all of them are resident.
func touchBinary(t *testing.T) {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Skip("cannot read /proc/self/mem:", err)
	}
	defer mem.Close()
	for _, l := range bytes.Split(maps, []byte("\n")) {
		f := bytes.Fields(l)
		if len(f) < 6 || string(f[5]) != exe || f[1][0] != 'r' || bytes.IndexByte(f[1], 'w') >= 0 {
			continue
		}
		span := bytes.SplitN(f[0], []byte("-"), 2)
		start, _ := strconv.ParseUint(string(span[0]), 16, 64)
		end, _ := strconv.ParseUint(string(span[1]), 16, 64)
		// Reading through /proc/self/mem faults the pages in, as running
		// from them does.
		if _, err := mem.ReadAt(make([]byte, end-start), int64(start)); err != nil {
			t.Fatalf("reading the executable's mapping %x-%x: %v", start, end, err)
		}
	}
}

// The executable's resident pages leave the RSS.
func TestDropBinaryPagesShrinksResidentFileMemory(t *testing.T) {
	touchBinary(t)
	before := rssFile(t)
	advised, err := dropBinaryPages()
	if errors.Is(err, syscall.EINVAL) && advised == 0 {
		t.Skip("this kernel has no MADV_PAGEOUT (Linux 5.4)")
	}
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("RssFile %d kB → %d kB; %d kB advised", before>>10, after>>10, advised>>10)
	if advised == 0 {
		t.Fatal("no range of the executable was advised")
	}
	if before < advised/2 {
		t.Fatalf("RssFile %d kB with every page of the executable (%d kB) touched", before>>10, advised>>10)
	}
	if after > before/2 {
		t.Fatalf("RssFile %d kB → %d kB: the executable's pages stayed resident", before>>10, after>>10)
	}
}

// An idle agent's release drops them too.
func TestReleaseDropsBinaryPages(t *testing.T) {
	if _, err := dropBinaryPages(); errors.Is(err, syscall.EINVAL) {
		t.Skip("this kernel has no MADV_PAGEOUT (Linux 5.4)")
	}
	touchBinary(t)
	before := rssFile(t)
	release()
	if after := rssFile(t); after > before/2 {
		t.Fatalf("RssFile %d kB → %d kB after release: the executable's pages stayed resident", before>>10, after>>10)
	}
}
