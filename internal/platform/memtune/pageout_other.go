//go:build !linux

package memtune

// dropBinaryPages is a no-op outside Linux.
func dropBinaryPages() (int64, error) { return 0, nil }
