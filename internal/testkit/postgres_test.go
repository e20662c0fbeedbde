package testkit_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
)

func TestPostgresURLGivesAFreshSchemaAndDropsIt(t *testing.T) {
	t.Parallel()
	var schema string
	t.Run("user", func(t *testing.T) {
		raw := testkit.PostgresURL(t)
		u, err := url.Parse(raw)
		require.NoError(t, err)
		schema = u.Query().Get("search_path")
		require.Regexp(t, `^hw_test_[0-9a-f]{16}$`, schema)

		conn, err := pgx.Connect(t.Context(), raw)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		var current string
		require.NoError(t, conn.QueryRow(t.Context(), `SELECT current_schema()`).Scan(&current))
		require.Equal(t, schema, current)
	})
	if schema == "" {
		t.Skip("the subtest was skipped: no server")
	}
	conn, err := pgx.Connect(t.Context(), testkit.PostgresBaseURL())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var exists bool
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists))
	require.False(t, exists, "schema dropped at cleanup")
}

// TestUnreachableServerSkipsOrFails runs itself in a child process pointed at
// a closed port: without HW_TEST_REQUIRE_DBS the child skips, with it the
// child fails, and either way it says which variable to set.
func TestUnreachableServerSkipsOrFails(t *testing.T) {
	if os.Getenv("TESTKIT_CHILD") == "1" {
		testkit.PostgresURL(t)
		t.Fatal("PostgresURL returned for an unreachable server")
	}
	t.Parallel()
	for _, tc := range []struct {
		require string
		verdict string
		failed  bool
	}{
		{"", "--- SKIP", false},
		{"1", "--- FAIL", true},
	} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestUnreachableServerSkipsOrFails$", "-test.v")
		cmd.Env = append(os.Environ(),
			"TESTKIT_CHILD=1",
			"HW_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5",
			"HW_TEST_REQUIRE_DBS="+tc.require,
		)
		out, err := cmd.CombinedOutput()
		require.Equal(t, tc.failed, err != nil, "child exit: %v\n%s", err, out)
		require.Contains(t, string(out), tc.verdict)
		require.Contains(t, string(out), "PostgreSQL not reachable at postgres://postgres@127.0.0.1:1/test")
		require.Contains(t, string(out), "set HW_TEST_POSTGRES_URL")
	}
}
