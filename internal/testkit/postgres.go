package testkit

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/store/postgres"
)

// PostgresDefaultURL is used when HW_TEST_POSTGRES_URL is unset.
const PostgresDefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresBaseURL returns the PostgreSQL server tests use.
func PostgresBaseURL() string { return serverURL("HW_TEST_POSTGRES_URL", PostgresDefaultURL) }

// PostgresURL creates a schema of the test's own and returns a URL whose
// search_path is that schema, so every unqualified table the test touches
// lives there. The schema is dropped with CASCADE when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := PostgresBaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unreachable(t, "PostgreSQL", postgres.RedactURL(base), "HW_TEST_POSTGRES_URL", err)
	}
	defer conn.Close(context.Background())

	schema := databaseName(t)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("testkit: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })
	return withSearchPath(base, schema)
}

// Postgres opens a store on a fresh schema (see PostgresURL), migrates it,
// and closes it when the test ends.
func Postgres(t testing.TB) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, postgres.Config{URL: PostgresURL(t), MaxConns: 8})
	if err != nil {
		t.Fatalf("testkit: open PostgreSQL store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("testkit: migrate PostgreSQL: %v", err)
	}
	return s
}

func dropSchema(t testing.TB, base, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("testkit: drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		t.Errorf("testkit: drop schema %s: %v", schema, err)
	}
}

// withSearchPath adds search_path to a URL as a query parameter, or to a
// key=value DSN as one more pair; pgx sends either as a run-time parameter.
func withSearchPath(base, schema string) string {
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		return strings.TrimSpace(base) + " search_path=" + schema
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
