package testkit_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
)

func TestBufferIsReadWhileWrittenAndTakeEmptiesIt(t *testing.T) {
	t.Parallel()
	var b testkit.Buffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = fmt.Fprintf(&b, "w%d ", i)
		}()
	}
	testkit.Eventually(t, time.Minute, "four writes", func() bool { return len(b.String()) == 12 })
	wg.Wait()
	require.Len(t, b.Take(), 12)
	require.Empty(t, b.String(), "Take empties the buffer")
}
