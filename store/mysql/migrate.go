package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/hammerwork-go/hw-agent/store"
)

// migrationFiles are the schema versions store.Migrate applies.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// splitStatements cuts a migration file at each ';' that ends a line, and
// drops pieces that hold only comments. The files are ours: they keep ';' out
// of comments and string literals, so this need not parse SQL, and the
// connection needs no multiStatements (which would let any injected ';' run a
// second statement).
func splitStatements(file string) []string {
	var out []string
	for _, piece := range strings.Split(file, ";\n") {
		if hasSQL(piece) {
			out = append(out, strings.TrimSpace(piece))
		}
	}
	return out
}

func hasSQL(piece string) bool {
	for _, line := range strings.Split(piece, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "--") {
			return true
		}
	}
	return false
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS hammerwork_migrations (
    version    VARCHAR(255) NOT NULL PRIMARY KEY,
    applied_at DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin`

// migrationLockTimeout is how long a migrator waits for another one, in
// seconds (GET_LOCK's unit).
const migrationLockTimeout = 30

// Migrate applies every embedded migration not yet applied and returns the
// versions it applied.
//
// Migrators of one database serialise on a named lock (GET_LOCK, held by one
// connection for the whole run), so agents that start together do not apply
// a file twice. MySQL commits DDL implicitly, so a migration cannot be one
// transaction: its statements are written to be re-runnable (IF NOT EXISTS)
// and its version is recorded only after all of them succeeded, so a
// migration interrupted by a crash is simply run again.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if err := lockMigrations(ctx, conn); err != nil {
		return nil, err
	}
	// Released on the same connection; if that fails the connection is
	// discarded, and the lock dies with it.
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `DO RELEASE_LOCK(CONCAT('hammerwork_migrate:', MD5(DATABASE())))`); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return store.Migrate(ctx, migrationFiles, migrator{s: s, conn: conn})
}

// PendingMigrations returns the embedded versions not yet applied; on an
// empty database that is all of them.
func (s *Store) PendingMigrations(ctx context.Context) ([]string, error) {
	return store.PendingMigrations(ctx, migrationFiles, migrator{s: s})
}

// migrator is MySQL's store.MigrationDialect. Its steps run on the one
// connection that holds the migration lock, outside a transaction.
type migrator struct {
	s    *Store
	conn *sql.Conn
}

func (m migrator) InTx(_ context.Context, fn func(store.MigrationTx) error) error { return fn(m) }

func (m migrator) AppliedVersions(ctx context.Context) ([]string, error) {
	var n int
	err := m.s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables
		WHERE table_schema = DATABASE() AND table_name = 'hammerwork_migrations'`).Scan(&n)
	if err != nil || n == 0 {
		return nil, err
	}
	return store.QueryStrings(ctx, m.s.db, `SELECT version FROM hammerwork_migrations`)
}

func (m migrator) Applied(ctx context.Context, version string) (bool, error) {
	if _, err := m.conn.ExecContext(ctx, createMigrationsTable); err != nil {
		return false, fmt.Errorf("create hammerwork_migrations: %w", err)
	}
	var n int
	err := m.conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM hammerwork_migrations WHERE version = ?`, version).Scan(&n)
	return n > 0, err
}

// Run runs the file one statement at a time (the driver runs one per call)
// and records the version once all of them succeeded.
func (m migrator) Run(ctx context.Context, mg store.Migration) error {
	for i, stmt := range splitStatements(mg.SQL) {
		if _, err := m.conn.ExecContext(ctx, stmt); err != nil && !alreadyApplied(err) {
			return fmt.Errorf("statement %d: %w", i+1, err)
		}
	}
	if _, err := m.conn.ExecContext(ctx, `INSERT INTO hammerwork_migrations (version, applied_at) VALUES (?, UTC_TIMESTAMP(6))`, mg.Version); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// alreadyApplied reports the errors a DDL statement returns when a previous,
// interrupted run of its migration already applied it: a duplicate column
// (1060) or index name (1061). MySQL has no ADD COLUMN IF NOT EXISTS or
// CREATE INDEX IF NOT EXISTS (MariaDB has both), so this is what keeps such
// statements re-runnable on both servers.
func alreadyApplied(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && (myErr.Number == 1060 || myErr.Number == 1061)
}

// lockMigrations takes the migration lock of the current database. The name
// holds a hash of the database name because lock names are server-wide and at
// most 64 characters: migrators of other databases (tests) do not wait.
func lockMigrations(ctx context.Context, conn *sql.Conn) error {
	var got sql.NullInt64
	err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(CONCAT('hammerwork_migrate:', MD5(DATABASE())), ?)`, migrationLockTimeout).Scan(&got)
	if err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("take migration lock: another migrator held it for %ds", migrationLockTimeout)
	}
	return nil
}
