// Package mysql is the MySQL (8.0+) and MariaDB (10.6+) dialect of
// store.Store, on github.com/go-sql-driver/mysql.
//
// MySQL has no UPDATE ... RETURNING, so every change is a short transaction
// that locks the rows it will change (in id order, so two transactions never
// wait on each other in opposite orders), updates them with one statement
// and, where the caller needs the rows, reads them back. Sessions run at READ
// COMMITTED, which takes no gap locks, and leases use FOR UPDATE SKIP LOCKED,
// so agents never wait on each other's rows. InnoDB still reports the odd
// deadlock (1213) or lock wait timeout (1205) under load: those transactions
// are retried with a short backoff and counted (RetriedTransactions).
//
// Every session runs with time_zone '+00:00' and the driver reads and writes
// DATETIME values as UTC, so stored times are UTC whatever the server's zone,
// and NOW() in hand-written queries (such as an operator's query for due
// jobs) agrees with them.
//
// Server features used, and where they start: SKIP LOCKED (MySQL 8.0.1,
// MariaDB 10.6), JSON_TABLE to join a batch's per-job values (MySQL 8.0.4,
// MariaDB 10.6), WITH RECURSIVE for workflow descendants (MySQL 8.0.1,
// MariaDB 10.2). Every generally available MySQL 8 release (8.0.11 on) has
// all of them; CHECK constraints are enforced from MySQL 8.0.16 and parsed
// but ignored before. Tested on MariaDB 10.11.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-sql-driver/mysql"

	"github.com/hammerwork-go/hw-agent/store"
)

// DefaultMaxConns is the pool size when Config.MaxConns is zero: the
// default of the database.max_conns setting.
const DefaultMaxConns = 10

// Config says how to connect.
type Config struct {
	// URL is mysql://user:password@host:port/database?param=value, or the
	// driver's DSN user:password@tcp(host:port)/database?param=value (with
	// or without the mysql:// prefix). Query parameters are the driver's
	// (tls=true, timeout=5s, ...) or session variables. parseTime, loc,
	// time_zone and the isolation level are always overridden: the store
	// depends on them.
	URL string
	// MaxConns caps the pool. Zero means DefaultMaxConns.
	MaxConns int
}

// Store is a store.Store on MySQL or MariaDB. It is safe for concurrent use.
type Store struct {
	db *sql.DB
	// retried counts transactions run again after a deadlock or lock wait
	// timeout.
	retried   atomic.Int64
	closeOnce sync.Once
	closeErr  error
	// clock is the database's time, which decides what is due or expired.
	clock *store.Clock
}

var _ store.Store = (*Store)(nil)

// Open connects a pool and checks that the server answers. It does not
// migrate: call Migrate (or check PendingMigrations) before use. Errors never
// contain the password of cfg.URL.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	mcfg, err := parseURL(cfg.URL)
	if err != nil {
		return nil, store.RedactError(fmt.Errorf("parse mysql url %s: %w", store.RedactURL(cfg.URL), err), store.URLPassword(cfg.URL))
	}
	secret := mcfg.Passwd
	fail := func(format string, err error) error {
		return store.RedactError(fmt.Errorf(format, store.RedactURL(cfg.URL), err), secret)
	}
	isolation, err := isolationVariable(ctx, mcfg)
	if err != nil {
		return nil, fail("connect to mysql %s: %w", err)
	}
	mcfg.Params[isolation] = "'READ-COMMITTED'"
	connector, err := mysql.NewConnector(mcfg)
	if err != nil {
		return nil, fail("open mysql %s: %w", err)
	}
	db := sql.OpenDB(connector)
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	// Below the servers' default wait_timeout (8h) and any proxy's idle
	// cut-off, so the pool rarely hands out a connection the server closed.
	db.SetConnMaxLifetime(30 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fail("connect to mysql %s: %w", err)
	}
	s := &Store{db: db}
	s.clock = store.NewClock(s.readClock, store.DefaultClockSync)
	if _, err := s.clock.Now(ctx); err != nil {
		_ = db.Close()
		return nil, fail("connect to mysql %s: %w", err)
	}
	return s, nil
}

// readClock asks the server for its time. UTC_TIMESTAMP is UTC whatever
// the session's time_zone, and the driver reads it as UTC (loc).
func (s *Store) readClock(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := s.db.QueryRowContext(ctx, `SELECT UTC_TIMESTAMP(6)`).Scan(&t); err != nil {
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

// isolationVariable names the session variable of the isolation level:
// transaction_isolation on MySQL 8 (which removed tx_isolation) and MariaDB
// 11.1+, tx_isolation on older MariaDB (10.11 has no transaction_isolation).
// Setting it per connection in the handshake costs nothing per transaction,
// unlike SET TRANSACTION before each BEGIN.
func isolationVariable(ctx context.Context, mcfg *mysql.Config) (string, error) {
	connector, err := mysql.NewConnector(mcfg)
	if err != nil {
		return "", err
	}
	probe := sql.OpenDB(connector)
	defer probe.Close()
	var level string
	err = probe.QueryRowContext(ctx, `SELECT @@SESSION.transaction_isolation`).Scan(&level)
	var myErr *mysql.MySQLError
	switch {
	case err == nil:
		return "transaction_isolation", nil
	case errors.As(err, &myErr) && myErr.Number == 1193: // unknown system variable
		return "tx_isolation", nil
	}
	return "", err
}

// parseURL turns either URL form into a driver configuration with the
// settings the store depends on.
func parseURL(raw string) (*mysql.Config, error) {
	rest := strings.TrimPrefix(raw, "mysql://")
	var cfg *mysql.Config
	if isDSN(rest) {
		c, err := mysql.ParseDSN(rest)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else {
		u, err := url.Parse("mysql://" + rest)
		if err != nil {
			return nil, errors.New("not a mysql://user:password@host:port/database URL")
		}
		// The driver parses the query string: its own options, and session
		// variables for the rest.
		c, err := mysql.ParseDSN("/?" + u.RawQuery)
		if err != nil {
			return nil, err
		}
		cfg = c
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
		cfg.Net = "tcp"
		host, port := u.Hostname(), u.Port()
		if host == "" {
			host = "127.0.0.1"
		}
		if port == "" {
			port = "3306"
		}
		cfg.Addr = net.JoinHostPort(host, port)
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
	}
	if cfg.DBName == "" {
		return nil, errors.New("the url names no database")
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// The driver then sends each statement with its arguments in one round
	// trip, escaping them itself, instead of preparing, executing and
	// closing a server-side statement: two round trips more per query. It
	// refuses character sets where that escaping would be unsafe.
	cfg.InterpolateParams = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	for k := range cfg.Params {
		switch strings.ToLower(k) {
		case "time_zone", "transaction_isolation", "tx_isolation":
			delete(cfg.Params, k)
		}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	return cfg, nil
}

// isDSN tells the driver's DSN (user:pw@tcp(host:port)/db) from a URL: only
// the DSN has a parenthesised address before the path.
func isDSN(s string) bool {
	slash := strings.Index(s, "/")
	if slash < 0 {
		return false
	}
	return strings.Contains(s[:slash], "(")
}

// DB exposes the connection pool to packages that add their own tables on the
// same database, and to tests.
func (s *Store) DB() *sql.DB { return s.db }

// RetriedTransactions is the number of transactions this store ran again
// after a deadlock (1213) or lock wait timeout (1205). A steady climb means
// agents contend for the same rows. The agent exports it as
// hammerwork_db_transaction_retries_total.
func (s *Store) RetriedTransactions() int64 { return s.retried.Load() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping mysql: %w", err)
	}
	return nil
}

// Close releases the pool's connections. Safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}

// MySQL error numbers the store branches on.
const (
	errLockWaitTimeout = 1205
	errDeadlock        = 1213
	errDuplicateKey    = 1062
	errNoSuchTable     = 1146
)

// retryable reports whether InnoDB rolled the transaction (or its statement)
// back for a reason that running it again can cure.
func retryable(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && (myErr.Number == errDeadlock || myErr.Number == errLockWaitTimeout)
}

// txAttempts bounds how often one transaction runs: a deadlock victim
// usually succeeds at once on its second run; a queue that keeps
// deadlocking should surface the error rather than spin.
const txAttempts = 5

// inTx runs fn in a transaction and commits it. A deadlock or lock wait
// timeout rolls everything back and runs fn again after a short, jittered
// backoff, so fn must compute its results afresh on each run.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	policy := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(5*time.Millisecond),
		backoff.WithMaxInterval(200*time.Millisecond),
		backoff.WithMaxElapsedTime(0),
	)
	run := 0
	return backoff.Retry(func() error {
		run++
		if run > 1 {
			s.retried.Add(1)
		}
		err := s.runTx(ctx, fn)
		if err != nil && !retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(backoff.WithMaxRetries(policy, txAttempts-1), ctx))
}

func (s *Store) runTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// wrap adds what was being done to err and turns the server's errors that
// callers branch on into the store's sentinels: a missing hammerwork table is
// store.ErrNotMigrated, a duplicate key store.ErrConflict.
func wrap(err error, format string, a ...any) error {
	what := fmt.Sprintf(format, a...)
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case errNoSuchTable:
			return fmt.Errorf("%s: %w (%s)", what, store.ErrNotMigrated, myErr.Message)
		case errDuplicateKey:
			return fmt.Errorf("%s: %w: %s", what, store.ErrConflict, myErr.Message)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// RedactURL returns rawURL (either form) with any password replaced by
// "xxxxx", for logs and error messages: store.RedactURL, the one redactor.
func RedactURL(rawURL string) string { return store.RedactURL(rawURL) }
