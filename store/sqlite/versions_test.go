package sqlite

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/store"
)

// embeddedVersions lists every embedded migration version in order, so the
// migration tests need no edit when a feature adds a version.
func embeddedVersions(t *testing.T) []string {
	t.Helper()
	ms, err := store.Migrations(migrationFiles)
	require.NoError(t, err)
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Version
	}
	require.Equal(t, []string{"0001_init", "0002_workflows"}, out[:2], "the first versions never change")
	return out
}
