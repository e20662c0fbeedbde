// Package sqlite is the embedded store backend, on modernc.org/sqlite (no cgo).
//
// SQLite lets one writer in at a time, so the Store keeps a single write
// connection and runs every change in a BEGIN IMMEDIATE transaction on it:
// writers of this process queue in database/sql instead of fighting over the
// lock, and writers of other processes wait in busy_timeout instead of
// failing with "database is locked". Reads (Get, List, QueueStats) use a pool
// of read-only connections, which WAL mode lets run beside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	// Registers the "sqlite" database/sql driver.
	_ "modernc.org/sqlite"

	"github.com/hammerwork-go/hw-agent/store"
)

// Config says which database to open.
type Config struct {
	// URL is "sqlite://path" (relative, or absolute as sqlite:///abs/path)
	// or "sqlite::memory:" for a private in-memory database.
	URL string
}

// Store is the SQLite implementation of store.Store.
type Store struct {
	// write is the one connection every change goes through.
	write *sql.DB
	// read serves Get, List and QueueStats. In memory mode it is write
	// itself: an in-memory database lives in one connection.
	read      *sql.DB
	closeOnce sync.Once
	closeErr  error
	// clock is the database's time. SQLite runs inside the process, so
	// that is the host's clock, read afresh every time.
	clock *store.Clock
}

var _ store.Store = (*Store)(nil)

// newStore wraps opened connections.
func newStore(write, read *sql.DB) *Store {
	return &Store{write: write, read: read, clock: store.NewClock(hostClock, 0)}
}

// hostClock is SQLite's clock: the one strftime('now') reads.
func hostClock(context.Context) (time.Time, error) { return time.Now(), nil }

// DatabaseNow is the database's current time: the host's, for SQLite.
func (s *Store) DatabaseNow(ctx context.Context) (time.Time, error) {
	return s.clock.At(ctx, time.Time{})
}

// MemoryURL opens a private in-memory database.
const MemoryURL = "sqlite::memory:"

// readConns sizes the read pool; reads are short, so a few connections
// serve an agent, its API and the CLI.
const readConns = 4

// busyTimeoutMillis is how long a statement waits for another process's
// write lock before failing.
const busyTimeoutMillis = 10000

// Open opens (creating if missing) the database cfg.URL names. Call Migrate
// before using the store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	path, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return openMemory(ctx)
	}
	return openFile(ctx, path)
}

// parseURL returns the file path of a sqlite:// URL, or "" for memory.
func parseURL(raw string) (string, error) {
	if raw == MemoryURL {
		return "", nil
	}
	path, ok := strings.CutPrefix(raw, "sqlite://")
	if !ok {
		return "", fmt.Errorf("%w: database url %q: want sqlite://path or %s", store.ErrInvalid, raw, MemoryURL)
	}
	if path == "" {
		return "", fmt.Errorf("%w: database url %q names no file", store.ErrInvalid, raw)
	}
	if strings.ContainsRune(path, '?') {
		return "", fmt.Errorf("%w: database url %q: query parameters are not supported", store.ErrInvalid, raw)
	}
	return path, nil
}

// dsn builds a driver DSN with the pragmas every connection needs.
func dsn(path string, extra url.Values) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis))
	q.Add("_pragma", "foreign_keys(1)")
	for k, vs := range extra {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	return path + "?" + q.Encode()
}

func openFile(ctx context.Context, path string) (*Store, error) {
	// temp_store(MEMORY): a statement that fires the outbox triggers keeps
	// a statement journal, which past 64 KiB spilled to a temporary file and
	// cost up to a third of the writer's CPU.
	write, err := sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {"journal_mode(WAL)", "synchronous(NORMAL)", "temp_store(MEMORY)"},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	// The write connection is opened first: switching to WAL needs the
	// database to itself, and the readers then find it in WAL mode.
	if err := write.PingContext(ctx); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open sqlite database %q: %w", path, err)
	}
	read, err := sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {"query_only(1)"},
	}))
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open sqlite database %q for reading: %w", path, err)
	}
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)
	if err := read.PingContext(ctx); err != nil {
		_ = write.Close()
		_ = read.Close()
		return nil, fmt.Errorf("open sqlite database %q for reading: %w", path, err)
	}
	return newStore(write, read), nil
}

func openMemory(ctx context.Context) (*Store, error) {
	db, err := sql.Open("sqlite", dsn(":memory:", url.Values{"_txlock": {"immediate"}}))
	if err != nil {
		return nil, fmt.Errorf("open in-memory sqlite database: %w", err)
	}
	// One connection, never recycled: closing it would drop the database.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open in-memory sqlite database: %w", err)
	}
	return newStore(db, db), nil
}

// Ping checks that both the write connection and the read pool answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite read pool: %w", err)
	}
	return nil
}

// Close releases every connection. Safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		err := s.write.Close()
		if s.read != s.write {
			err = errors.Join(err, s.read.Close())
		}
		s.closeErr = err
	})
	return s.closeErr
}

// inTx runs fn in one BEGIN IMMEDIATE transaction on the write connection and
// commits when fn succeeds.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return dbErr(err)
	}
	return dbErr(tx.Commit())
}

// dbErr marks a query on a database without our tables as ErrNotMigrated,
// so callers get the actionable message instead of "no such table", and a
// unique constraint (a duplicate job id) is an ErrConflict.
func dbErr(err error) error {
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "no such table: hammerwork_"):
		return fmt.Errorf("%w (%w)", store.ErrNotMigrated, err)
	case strings.Contains(err.Error(), "UNIQUE constraint failed"):
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	}
	return err
}
