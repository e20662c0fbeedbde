package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"github.com/hammerwork-go/hw-agent/store"
)

// migrationFiles are the schema versions store.Migrate applies.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS hammerwork_migrations (
	version    TEXT NOT NULL PRIMARY KEY,
	applied_at TEXT NOT NULL
)`

// Migrate applies every migration not yet applied, each in its own
// transaction, and returns the versions it applied. Each transaction checks
// the version again under the write lock, so processes migrating the same
// file at once apply each version exactly once.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	return store.Migrate(ctx, migrationFiles, migrator{s})
}

// PendingMigrations returns the versions not yet applied; on an empty
// database that is every version.
func (s *Store) PendingMigrations(ctx context.Context) ([]string, error) {
	return store.PendingMigrations(ctx, migrationFiles, migrator{s})
}

// migrator is SQLite's store.MigrationDialect: the write connection's
// BEGIN IMMEDIATE is the migration lock.
type migrator struct{ s *Store }

func (m migrator) InTx(ctx context.Context, fn func(store.MigrationTx) error) error {
	return m.s.inTx(ctx, func(tx *sql.Tx) error { return fn(migrationTx{tx}) })
}

func (m migrator) AppliedVersions(ctx context.Context) ([]string, error) {
	var exists int
	err := m.s.read.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'hammerwork_migrations'`).Scan(&exists)
	if err != nil || exists == 0 {
		return nil, err
	}
	return store.QueryStrings(ctx, m.s.read, `SELECT version FROM hammerwork_migrations`)
}

type migrationTx struct{ tx *sql.Tx }

func (t migrationTx) Applied(ctx context.Context, version string) (bool, error) {
	if _, err := t.tx.ExecContext(ctx, createMigrationsTable); err != nil {
		return false, fmt.Errorf("create hammerwork_migrations: %w", err)
	}
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM hammerwork_migrations WHERE version = ?`, version).Scan(&n)
	return n > 0, err
}

func (t migrationTx) Run(ctx context.Context, m store.Migration) error {
	if _, err := t.tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO hammerwork_migrations (version, applied_at) VALUES (?, ?)`,
		m.Version, ts(time.Now()))
	return err
}
