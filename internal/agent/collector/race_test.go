//go:build race

package collector

// raceEnabled: the race detector instruments frames, so stack sizes differ.
const raceEnabled = true
