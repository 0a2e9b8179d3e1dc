package memtune

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// madvPageout is MADV_PAGEOUT (Linux 5.4): reclaim the range's pages now.
const madvPageout = 21

// dropBinaryPages unmaps the resident pages of the agent's own executable
// (code and read-only data), so that an idle agent does not keep in its
// RSS the pages that starting up and the last burst touched once: package
// initialisation alone leaves most of the binary's 20 MB resident. They
// are clean file pages, so nothing is written; what the idle agent runs
// next faults back in from the page cache (a minor fault each). It
// returns the bytes of the ranges advised, and why it stopped short (no
// /proc, or EINVAL from a kernel before MADV_PAGEOUT).
func dropBinaryPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 || string(fields[5]) != exe || bytes.IndexByte(fields[1], 'w') >= 0 {
			continue
		}
		span := bytes.SplitN(fields[0], []byte("-"), 2)
		if len(span) != 2 {
			continue
		}
		start, err1 := strconv.ParseUint(string(span[0]), 16, 64)
		end, err2 := strconv.ParseUint(string(span[1]), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), madvPageout); errno != 0 {
			return total, errno
		}
		total += int64(end - start)
	}
	return total, sc.Err()
}
