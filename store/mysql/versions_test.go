package mysql_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// embeddedVersions lists every migration version in order, read from the
// files the binary embeds, so the migration tests need no edit when a
// feature adds a version.
func embeddedVersions(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	require.NoError(t, err)
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = strings.TrimSuffix(filepath.Base(f), ".sql")
	}
	require.Equal(t, []string{"0001_init", "0002_workflows"}, out[:2], "the first versions never change")
	return out
}

// createdTables counts the tables the embedded migrations create.
func createdTables(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	require.NoError(t, err)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		n += strings.Count(string(b), "\nCREATE TABLE IF NOT EXISTS hammerwork_")
	}
	return n
}
