package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"
)

// migrationFiles are the schema versions, applied in file name order. A
// version is its file name without ".sql"; a released file never changes.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list embedded migrations: %w", err)
	}
	sort.Strings(names)
	ms := make([]migration, 0, len(names))
	for _, name := range names {
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", name, err)
		}
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		ms = append(ms, migration{version: version, sql: string(b)})
	}
	return ms, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS hammerwork_migrations (
	version    TEXT NOT NULL PRIMARY KEY,
	applied_at TEXT NOT NULL
)`

// Migrate applies every migration not yet applied, each in its own
// transaction, and returns the versions it applied. Each transaction checks
// the version again under the write lock, so processes migrating the same
// file at once apply each version exactly once.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range ms {
		var did bool
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
				return fmt.Errorf("create hammerwork_migrations: %w", err)
			}
			var n int
			err := tx.QueryRowContext(ctx,
				`SELECT count(*) FROM hammerwork_migrations WHERE version = ?`, m.version).Scan(&n)
			if err != nil || n > 0 {
				return err
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO hammerwork_migrations (version, applied_at) VALUES (?, ?)`,
				m.version, ts(time.Now())); err != nil {
				return err
			}
			did = true
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("apply sqlite migration %s: %w", m.version, err)
		}
		if did {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

// PendingMigrations returns the versions not yet applied; on an empty
// database that is every version.
func (s *Store) PendingMigrations(ctx context.Context) ([]string, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	done := map[string]bool{}
	var exists int
	err = s.read.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'hammerwork_migrations'`).Scan(&exists)
	if err != nil {
		return nil, fmt.Errorf("look for hammerwork_migrations: %w", err)
	}
	if exists > 0 {
		rows, err := s.read.QueryContext(ctx, `SELECT version FROM hammerwork_migrations`)
		if err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				return nil, fmt.Errorf("read applied migrations: %w", err)
			}
			done[v] = true
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read applied migrations: %w", err)
		}
	}
	var pending []string
	for _, m := range ms {
		if !done[m.version] {
			pending = append(pending, m.version)
		}
	}
	return pending, nil
}
