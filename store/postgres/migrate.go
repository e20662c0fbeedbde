package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/store"
)

// migrationFiles are the schema versions store.Migrate applies.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock serialises migrators of the same schema, so agents that
// start together do not apply a file twice; migrators of other schemas in
// the same database (tests) do not wait for each other.
const migrationLock = `SELECT pg_advisory_xact_lock(hashtextextended('hammerwork_migrations:' || coalesce(current_schema(), ''), 0))`

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS hammerwork_migrations (
    version    TEXT PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)`

// Migrate applies every embedded migration not yet applied, each in its own
// transaction under an advisory lock, and returns the versions it applied.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	return store.Migrate(ctx, migrationFiles, migrator{s})
}

// PendingMigrations returns the embedded versions not yet applied; on an
// empty schema that is all of them.
func (s *Store) PendingMigrations(ctx context.Context) ([]string, error) {
	return store.PendingMigrations(ctx, migrationFiles, migrator{s})
}

// migrator is PostgreSQL's store.MigrationDialect: DDL is transactional, so
// each file is one transaction.
type migrator struct{ s *Store }

func (m migrator) InTx(ctx context.Context, fn func(store.MigrationTx) error) error {
	return pgx.BeginFunc(ctx, m.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, migrationLock); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		return fn(migrationTx{tx})
	})
}

func (m migrator) AppliedVersions(ctx context.Context) ([]string, error) {
	var exists bool
	if err := m.s.pool.QueryRow(ctx, `SELECT to_regclass('hammerwork_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return nil, err
	}
	rows, err := m.s.pool.Query(ctx, `SELECT version FROM hammerwork_migrations`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

type migrationTx struct{ tx pgx.Tx }

func (t migrationTx) Applied(ctx context.Context, version string) (bool, error) {
	if _, err := t.tx.Exec(ctx, createMigrationsTable); err != nil {
		return false, fmt.Errorf("create hammerwork_migrations: %w", err)
	}
	var done bool
	if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hammerwork_migrations WHERE version = $1)`, version).Scan(&done); err != nil {
		return false, fmt.Errorf("read hammerwork_migrations: %w", err)
	}
	return done, nil
}

func (t migrationTx) Run(ctx context.Context, m store.Migration) error {
	// No arguments: pgx sends the file with the simple protocol, which runs
	// several statements.
	if _, err := t.tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO hammerwork_migrations (version, applied_at) VALUES ($1, now())`, m.Version); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}
