package agent

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A producer built without what it uses fails at once, naming the part,
// instead of on its first lease.
func TestProducerConfigMustNameWhatIsMissing(t *testing.T) {
	t.Parallel()
	require.PanicsWithValue(t, "agent: producerConfig.due is not set", func() {
		a, err := New(Params{Config: DefaultConfig(), Store: newSQLite(t)})
		require.NoError(t, err)
		cfg := a.producers[0].cfg
		cfg.due = nil
		newProducer(cfg)
	})
}
