package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/go-sql-driver/mysql"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version    string   // the file name without .sql: "0001_init"
	statements []string // run one by one: the driver runs one statement per call
}

// migrations lists the embedded files in version order, each split into its
// statements.
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
		out = append(out, migration{
			version:    strings.TrimSuffix(path.Base(name), ".sql"),
			statements: splitStatements(string(b)),
		})
	}
	return out, nil
}

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
	all, err := migrations()
	if err != nil {
		return nil, err
	}
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
	if _, err := conn.ExecContext(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("create hammerwork_migrations: %w", err)
	}
	done, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range all {
		if done[m.version] {
			continue
		}
		for i, stmt := range m.statements {
			if _, err := conn.ExecContext(ctx, stmt); err != nil && !alreadyApplied(err) {
				return applied, fmt.Errorf("apply migration %s, statement %d: %w", m.version, i+1, err)
			}
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO hammerwork_migrations (version, applied_at) VALUES (?, UTC_TIMESTAMP(6))`, m.version); err != nil {
			return applied, fmt.Errorf("record migration %s: %w", m.version, err)
		}
		applied = append(applied, m.version)
	}
	return applied, nil
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

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func appliedVersions(ctx context.Context, q queryer) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT version FROM hammerwork_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read hammerwork_migrations: %w", err)
	}
	defer rows.Close()
	done := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read hammerwork_migrations: %w", err)
		}
		done[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read hammerwork_migrations: %w", err)
	}
	return done, nil
}

// PendingMigrations returns the embedded versions not yet applied; on an
// empty database that is all of them.
func (s *Store) PendingMigrations(ctx context.Context) ([]string, error) {
	all, err := migrations()
	if err != nil {
		return nil, err
	}
	var n int
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables
		WHERE table_schema = DATABASE() AND table_name = 'hammerwork_migrations'`).Scan(&n)
	if err != nil {
		return nil, fmt.Errorf("look for hammerwork_migrations: %w", err)
	}
	done := map[string]bool{}
	if n > 0 {
		if done, err = appliedVersions(ctx, s.db); err != nil {
			return nil, err
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
