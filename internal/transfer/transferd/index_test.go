package transferd

import (
	"io"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/config"
)

// The index pattern is the transfer's to parse; a bad one stops the start
// with the file and line at fault, as the loader's own errors do.
func TestBadIndexPatternStopsTheStartWithItsLine(t *testing.T) {
	for file, want := range map[string]string{
		"testdata/bad_index_token.bad.ini": `testdata/bad_index_token.bad.ini:4: [es] index: index pattern "%{topic}-%{date}": unknown %{date}; use %{topic} or %{+2006.01.02}`,
		"testdata/upper_index.bad.ini":     `testdata/upper_index.bad.ini:4: [es] index: index pattern "Logs-%{topic}": Elasticsearch index names must be lower case`,
	} {
		cfg, err := config.LoadTransfer(file)
		if err != nil {
			t.Fatalf("%s: the loader refused it (%v): the pattern is the transfer's to check", file, err)
		}
		l := logrus.New()
		l.SetOutput(io.Discard)
		if _, err := New(cfg, Options{}, logrus.NewEntry(l)); err == nil || err.Error() != want {
			t.Errorf("%s: New: %v\nwant %s", file, err, want)
		}
	}
}
