package testkit

import (
	"testing"

	"github.com/hammerwork-go/hw-agent/store"
)

// Backend is one kind of database the agent runs on, as a test gets it:
// a fresh empty database by URL, or a fresh migrated store. Tests list the
// backends a behaviour must hold on and run once per entry.
type Backend struct {
	Name string
	// URL creates an empty, unmigrated database the test owns.
	URL func(t testing.TB) string
	// Store opens a migrated store on a database the test owns.
	Store func(t testing.TB) store.Store
}

// The backends, one each.
var (
	SQLiteBackend   = Backend{Name: "sqlite", URL: SQLiteURL, Store: func(t testing.TB) store.Store { return SQLite(t) }}
	PostgresBackend = Backend{Name: "postgres", URL: PostgresURL, Store: func(t testing.TB) store.Store { return Postgres(t) }}
	MySQLBackend    = Backend{Name: "mysql", URL: MySQLURL, Store: func(t testing.TB) store.Store { return MySQL(t) }}
)
