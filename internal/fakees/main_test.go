package fakees

import (
	"testing"

	"github.com/logpipe/logpipe/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }
