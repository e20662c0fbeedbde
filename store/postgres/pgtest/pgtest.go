// Package pgtest gives tests a PostgreSQL schema of their own; it is
// internal/testkit's PostgreSQL fixture under the name the agent's tests
// still import.
package pgtest

import (
	"testing"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/store/postgres"
)

// URL is testkit.PostgresURL.
func URL(t testing.TB) string {
	t.Helper()
	return testkit.PostgresURL(t)
}

// New is testkit.Postgres.
func New(t testing.TB) *postgres.Store {
	t.Helper()
	return testkit.Postgres(t)
}
