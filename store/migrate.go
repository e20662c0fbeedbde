package store

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Migration is one embedded schema version: a file that never changes once
// released. A schema change is a new file.
type Migration struct {
	// Version is the file name without ".sql": "0001_init".
	Version string
	SQL     string
}

// Migrations lists the migrations/*.sql files of files (a backend's embedded
// directory) in version (file name) order.
func Migrations(files fs.FS) ([]Migration, error) {
	names, err := fs.Glob(files, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list embedded migrations: %w", err)
	}
	slices.Sort(names)
	out := make([]Migration, 0, len(names))
	for _, name := range names {
		b, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: strings.TrimSuffix(path.Base(name), ".sql"), SQL: string(b)})
	}
	return out, nil
}

// MigrationDialect is what a backend tells the one migrator: how it runs a
// step in a transaction and reads the hammerwork_migrations table.
type MigrationDialect interface {
	// InTx runs fn in one transaction that holds the migration lock, so
	// migrators that start together apply each version once.
	InTx(ctx context.Context, fn func(MigrationTx) error) error
	// AppliedVersions returns the recorded versions: none when the table
	// does not exist yet.
	AppliedVersions(ctx context.Context) ([]string, error)
}

// MigrationTx is one step of the migrator, inside InTx.
type MigrationTx interface {
	// Applied creates the versions table if needed and reports whether
	// version is recorded in it.
	Applied(ctx context.Context, version string) (bool, error)
	// Run runs m's file and records its version.
	Run(ctx context.Context, m Migration) error
}

// Migrate applies every migration in files not yet applied, each in its own
// transaction that checks the version again under the lock, and returns the
// versions it applied.
func Migrate(ctx context.Context, files fs.FS, d MigrationDialect) ([]string, error) {
	all, err := Migrations(files)
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range all {
		var did bool
		err := d.InTx(ctx, func(tx MigrationTx) error {
			did = false
			done, err := tx.Applied(ctx, m.Version)
			if err != nil || done {
				return err
			}
			if err := tx.Run(ctx, m); err != nil {
				return err
			}
			did = true
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("apply migration %s: %w", m.Version, err)
		}
		if did {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// PendingMigrations returns the versions in files not yet applied; on an
// empty database that is all of them.
func PendingMigrations(ctx context.Context, files fs.FS, d MigrationDialect) ([]string, error) {
	all, err := Migrations(files)
	if err != nil {
		return nil, err
	}
	versions, err := d.AppliedVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read hammerwork_migrations: %w", err)
	}
	var pending []string
	for _, m := range all {
		if !slices.Contains(versions, m.Version) {
			pending = append(pending, m.Version)
		}
	}
	return pending, nil
}
