package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version string // the file name without .sql: "0001_init"
	sql     string
}

// migrations lists the embedded files in version order.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list embedded migrations: %w", err)
	}
	slices.Sort(names)
	out := make([]migration, 0, len(names))
	for _, name := range names {
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", name, err)
		}
		out = append(out, migration{version: strings.TrimSuffix(path.Base(name), ".sql"), sql: string(b)})
	}
	return out, nil
}

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
	all, err := migrations()
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range all {
		did, err := s.applyMigration(ctx, m)
		if err != nil {
			return applied, err
		}
		if did {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

func (s *Store) applyMigration(ctx context.Context, m migration) (applied bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, migrationLock); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
			return fmt.Errorf("create hammerwork_migrations: %w", err)
		}
		var done bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hammerwork_migrations WHERE version = $1)`, m.version).Scan(&done); err != nil {
			return fmt.Errorf("read hammerwork_migrations: %w", err)
		}
		if done {
			return nil
		}
		// No arguments: pgx sends the file with the simple protocol, which
		// runs several statements.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO hammerwork_migrations (version, applied_at) VALUES ($1, now())`, m.version); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("apply migration %s: %w", m.version, err)
	}
	return applied, nil
}

// PendingMigrations returns the embedded versions not yet applied; on an
// empty schema that is all of them.
func (s *Store) PendingMigrations(ctx context.Context) ([]string, error) {
	all, err := migrations()
	if err != nil {
		return nil, err
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('hammerwork_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for hammerwork_migrations: %w", err)
	}
	done := map[string]bool{}
	if exists {
		rows, err := s.pool.Query(ctx, `SELECT version FROM hammerwork_migrations`)
		if err != nil {
			return nil, fmt.Errorf("read hammerwork_migrations: %w", err)
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("read hammerwork_migrations: %w", err)
		}
		for _, v := range versions {
			done[v] = true
		}
	}
	var pending []string
	for _, m := range all {
		if !done[m.version] {
			pending = append(pending, m.version)
		}
	}
	return pending, nil
}
