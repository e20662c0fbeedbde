// Package postgres is the PostgreSQL dialect of store.Store, built on pgx/v5.
//
// Hot paths are one statement each: Lease is an UPDATE ... FROM (SELECT ...
// FOR UPDATE SKIP LOCKED) ... RETURNING against a partial index in lease
// order; Complete, Fail, Extend and Release take arrays and unnest them; large
// enqueues use COPY. Enqueue notifies the channel hammerwork_jobs once per
// queue per batch, so an idle agent can wake up without polling.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hammerwork-go/hw-agent/store"
)

// DefaultMaxConns is the pool size when Config.MaxConns is zero: the
// default of the database.max_conns setting.
const DefaultMaxConns = 10

// NotifyChannel is the LISTEN/NOTIFY channel Enqueue signals; the payload is
// the queue name.
const NotifyChannel = "hammerwork_jobs"

// Config says how to connect.
type Config struct {
	// URL is a postgres:// or postgresql:// URL (or a key=value DSN). Unknown
	// query parameters (search_path=...) are sent as run-time parameters.
	URL string
	// MaxConns caps the pool. Zero means DefaultMaxConns.
	MaxConns int
}

// Store is a store.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// closing ends the listeners of WaitForJobs when the store closes.
	closing   context.Context
	stop      context.CancelFunc
	mu        sync.Mutex // guards closed and listeners.Add
	closed    bool
	listeners sync.WaitGroup
	closeOnce sync.Once
	// retried counts transactions run again after a deadlock or a
	// serialization failure (see inTx).
	retried atomic.Int64
	// clock is the database's time, which decides what is due or expired.
	clock *store.Clock
}

// RetriedTransactions is the number of transactions this store ran again
// after a deadlock (40P01) or serialization failure (40001); the agent
// exports it as hammerwork_db_transaction_retries_total. A steady climb means
// agents contend for the same rows (e.g. a fail_fast cancel racing its
// siblings' completions).
func (s *Store) RetriedTransactions() int64 { return s.retried.Load() }

var _ store.Store = (*Store)(nil)

// Open connects a pool and checks that the server answers. It does not
// migrate: call Migrate (or check PendingMigrations) before use. Errors
// never contain the password of cfg.URL.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	secret := store.URLPassword(cfg.URL)
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, store.RedactError(fmt.Errorf("parse postgres url %s: %w", store.RedactURL(cfg.URL), err), secret)
	}
	if pcfg.ConnConfig.Password != "" {
		secret = pcfg.ConnConfig.Password
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	pcfg.MaxConns = int32(maxConns)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, store.RedactError(fmt.Errorf("open postgres %s: %w", store.RedactURL(cfg.URL), err), secret)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, store.RedactError(fmt.Errorf("connect to postgres %s: %w", store.RedactURL(cfg.URL), err), secret)
	}
	closing, stop := context.WithCancel(context.Background())
	s := &Store{pool: pool, closing: closing, stop: stop}
	s.clock = store.NewClock(s.readClock, store.DefaultClockSync)
	if _, err := s.clock.Now(ctx); err != nil {
		s.Close()
		return nil, store.RedactError(fmt.Errorf("connect to postgres %s: %w", store.RedactURL(cfg.URL), err), secret)
	}
	return s, nil
}

// readClock asks the server for its time. clock_timestamp() is the moment
// the statement runs, where now() would be its transaction's start.
func (s *Store) readClock(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// DatabaseNow is the database's current time as the store's clock
// estimates it.
func (s *Store) DatabaseNow(ctx context.Context) (time.Time, error) {
	at, err := s.clock.At(ctx, time.Time{})
	if err != nil {
		return time.Time{}, wrap(err, "read the database's time")
	}
	return at, nil
}

// Pool exposes the connection pool to packages that add their own tables
// on the same database (workflows, schedules).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close ends every WaitForJobs listener and releases the pool's
// connections. Safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.stop()
		s.listeners.Wait()
		s.pool.Close()
	})
	return nil
}

// RedactURL returns rawURL with any password replaced by "xxxxx", for logs
// and error messages: store.RedactURL, the one redactor.
func RedactURL(rawURL string) string { return store.RedactURL(rawURL) }

// wrap adds what was being done to err and, when a hammerwork table does not
// exist, says the database is not migrated (store.ErrNotMigrated).
func wrap(err error, format string, a ...any) error {
	what := fmt.Sprintf(format, a...)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return fmt.Errorf("%s: %w (%s)", what, store.ErrNotMigrated, pgErr.Message)
	}
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation: a live unique key, say
		return fmt.Errorf("%s: %w: %s", what, store.ErrConflict, pgErr.Detail)
	}
	return fmt.Errorf("%s: %w", what, err)
}
