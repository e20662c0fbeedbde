package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/hammerwork-go/hw-agent/agent"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/mysql"
	"github.com/hammerwork-go/hw-agent/store/postgres"
	"github.com/hammerwork-go/hw-agent/store/sqlite"
)

// openStore opens the backend a database URL selects. It does not migrate:
// callers decide whether an unmigrated database is an error. The backends'
// errors name the database, with any password already redacted.
func openStore(ctx context.Context, db agent.DatabaseConfig) (store.Store, error) {
	kind, err := store.ParseDatabaseURL(db.URL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	switch kind {
	case store.DatabasePostgres:
		s, err := postgres.Open(ctx, postgres.Config{URL: db.URL, MaxConns: db.MaxConns})
		if err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		return s, nil
	case store.DatabaseSQLite:
		s, err := sqlite.Open(ctx, sqlite.Config{URL: db.URL})
		if err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		return s, nil
	case store.DatabaseMySQL:
		s, err := mysql.Open(ctx, mysql.Config{URL: db.URL, MaxConns: db.MaxConns})
		if err != nil {
			return nil, fmt.Errorf("open database: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("database url %s: no backend for %q", store.RedactURL(db.URL), kind)
}

// checkMigrated refuses a database with unapplied migrations, naming them and
// the command that applies them, instead of failing later on a missing column.
func checkMigrated(ctx context.Context, st store.Store, hint string) error {
	pending, err := st.PendingMigrations(ctx)
	if err != nil {
		return fmt.Errorf("check migrations: %w", err)
	}
	if len(pending) == 0 {
		return nil
	}
	return fmt.Errorf("database has %d unapplied migrations (%s): %s",
		len(pending), strings.Join(pending, ", "), hint)
}

// openMigratedStore loads the configuration and opens its database for the
// admin commands, which work on the database without a running agent.
func (c *cli) openMigratedStore(ctx context.Context) (store.Store, error) {
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	if err := checkMigrated(ctx, st, "run `hw-agent migrate` first"); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}
