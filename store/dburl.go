package store

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// DatabaseKind is the backend a database URL selects. The list lives here,
// above the backends, so that configuration can check a URL and every log
// line can redact one without importing a backend.
type DatabaseKind string

const (
	DatabasePostgres DatabaseKind = "postgres"
	DatabaseSQLite   DatabaseKind = "sqlite"
	DatabaseMySQL    DatabaseKind = "mysql"
)

// ParseDatabaseURL tells which backend a URL selects. Its error quotes the
// URL redacted.
func ParseDatabaseURL(raw string) (DatabaseKind, error) {
	switch {
	case raw == "":
		return "", errors.New("is empty")
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		return DatabasePostgres, nil
	case raw == "sqlite::memory:", strings.HasPrefix(raw, "sqlite://"):
		return DatabaseSQLite, nil
	case isMySQL(raw):
		return DatabaseMySQL, nil
	}
	return "", fmt.Errorf("%q has an unknown scheme (want postgres://, postgresql://, sqlite://path, sqlite::memory: or mysql://)", RedactURL(raw))
}

// isMySQL reports a mysql:// URL or the go-sql-driver DSN form
// (user:pass@tcp(host:port)/db), accepted bare too because MySQL users copy
// it from their apps.
func isMySQL(raw string) bool {
	return strings.HasPrefix(raw, "mysql://") || strings.Contains(raw, "@tcp(") || strings.Contains(raw, "@unix(")
}

// isBareMySQLDSN reports the driver's DSN without a scheme: it parses as a
// URL without user info, so only mysqlUserinfo finds its password.
func isBareMySQLDSN(raw string) bool {
	return isMySQL(raw) && !strings.Contains(raw, "://")
}

// isMySQLDSN tells the driver's DSN (user:pw@tcp(host:port)/db) from a URL:
// only the DSN has a parenthesised address before the path.
func isMySQLDSN(s string) bool {
	slash := strings.Index(s, "/")
	if slash < 0 {
		return false
	}
	return strings.Contains(s[:slash], "(")
}

// mysqlUserinfo matches the user:password@ part of a MySQL URL or DSN:
// everything up to the last '@' before the address, since a password may
// hold '@' or '/'.
var mysqlUserinfo = regexp.MustCompile(`^(?:mysql://)?([^:@]*):(.*)@(?:tcp\(|unix\(|[^@]*$)`)

// urlUserinfo matches scheme://user:password@ in a URL that net/url
// rejects (a bad port, say), so its password can still be found.
var urlUserinfo = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):([^@/]*)@`)

// RedactURL hides any password in a database URL (any backend's form: a
// URL with user info or a password query parameter, a bare MySQL DSN, a
// PostgreSQL keyword DSN) for logs and errors. A URL that does not parse
// but may hold a password shows only its scheme.
func RedactURL(raw string) string {
	if isBareMySQLDSN(raw) {
		if m := mysqlUserinfo.FindStringSubmatch(raw); m != nil {
			return strings.Replace(raw, ":"+m[2]+"@", ":xxxxx@", 1)
		}
		return raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil && strings.Contains(raw, "@"):
		scheme, _, _ := strings.Cut(raw, "://")
		return scheme + "://(redacted)"
	case err != nil || u.Scheme == "":
		return redactKeywordDSN(raw)
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// redactKeywordDSN hides the password=... of a PostgreSQL keyword DSN.
func redactKeywordDSN(dsn string) string {
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if strings.HasPrefix(f, "password=") {
			fields[i] = "password=xxxxx"
		}
	}
	return strings.Join(fields, " ")
}

// URLPassword is the password a database URL holds, decoded, found before
// the URL is parsed, so a backend can scrub it from even a parse error
// (RedactError). Empty when there is none.
func URLPassword(raw string) string {
	if isMySQL(raw) {
		m := mysqlUserinfo.FindStringSubmatch(raw)
		if m == nil {
			return ""
		}
		if strings.HasPrefix(raw, "mysql://") && !isMySQLDSN(strings.TrimPrefix(raw, "mysql://")) {
			if d, err := url.PathUnescape(m[2]); err == nil {
				return d
			}
		}
		return m[2]
	}
	if m := urlUserinfo.FindStringSubmatch(raw); m != nil {
		if p, err := url.PathUnescape(m[2]); err == nil {
			return p
		}
		return m[2]
	}
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		if p, ok := u.User.Password(); ok {
			return p
		}
		return u.Query().Get("password")
	}
	for _, f := range strings.Fields(raw) {
		if v, ok := strings.CutPrefix(f, "password="); ok {
			return strings.Trim(v, "'")
		}
	}
	return ""
}

// RedactError hides secret (a database password) from err's text, as typed
// or percent-encoded, while keeping the chain for errors.Is and errors.As:
// drivers quote the URL they failed on. An empty secret returns err.
func RedactError(err error, secret string) error {
	if secret == "" || err == nil {
		return err
	}
	return &redactedError{err: err, secret: secret}
}

type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string {
	msg := e.err.Error()
	for _, form := range []string{e.secret, url.PathEscape(e.secret), url.QueryEscape(e.secret)} {
		msg = strings.ReplaceAll(msg, form, "xxxxx")
	}
	return msg
}

func (e *redactedError) Unwrap() error { return e.err }
