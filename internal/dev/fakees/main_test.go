package fakees

import (
	"testing"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }
