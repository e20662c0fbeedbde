package store

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// A database password never reaches a log line or an error, even in a URL
// that does not parse.
func TestRedactURLHidesPasswords(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"postgres://u:s3cret@db:5432/x":     "postgres://u:xxxxx@db:5432/x",
		"postgres://u:s3%zzcret@db:5432/x":  "postgres://(redacted)",
		"sqlite://hammerwork.db":            "sqlite://hammerwork.db",
		"mysql://u:p@ss word@tcp(db:3306)/": "mysql://(redacted)",
		"mysql://u:s3cret@db:3306/x":        "mysql://u:xxxxx@db:3306/x",
		"mysql://u:s3cret@tcp(db:3306)/x":   "mysql://(redacted)",
		"u:s3cret@tcp(db:3306)/x":           "u:xxxxx@tcp(db:3306)/x",
		"postgres://u@db/x?password=s3cret": "postgres://u@db/x?password=xxxxx",
		"host=db user=u password=s3cret":    "host=db user=u password=xxxxx",
	} {
		got := RedactURL(raw)
		require.Equal(t, want, got, raw)
		require.NotContains(t, got, "s3")
	}
}

// URLPassword finds the decoded password of every backend's URL form, so a
// driver's error that quotes it can be scrubbed.
func TestURLPasswordFindsEveryForm(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"postgres://u:s3%40cret@db:5432/x":   "s3@cret",
		"postgres://u:s3cret@db:notaport/x":  "s3cret",
		"postgres://u@db/x?password=s3cret":  "s3cret",
		"host=db user=u password='s3cret'":   "s3cret",
		"mysql://u:s3%40cret@db:3306/x":      "s3@cret",
		"u:s3@cret@tcp(db:3306)/x":           "s3@cret",
		"mysql://u:s3%40cret@tcp(db:3306)/x": "s3%40cret",
		"sqlite://hammerwork.db":             "",
		"postgres://u@db/x":                  "",
	} {
		require.Equal(t, want, URLPassword(raw), raw)
	}
}

func TestRedactErrorHidesTheSecretAndKeepsTheChain(t *testing.T) {
	t.Parallel()
	cause := errors.New("dial mysql://u:s3@cret@db: refused (s3%40cret)")
	err := RedactError(cause, "s3@cret")
	require.Equal(t, "dial mysql://u:xxxxx@db: refused (xxxxx)", err.Error())
	require.ErrorIs(t, err, cause)
	require.Same(t, cause, RedactError(cause, ""))
}

func TestParseDatabaseURLSelectsTheBackend(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]DatabaseKind{
		"postgres://db/x":        DatabasePostgres,
		"postgresql://db/x":      DatabasePostgres,
		"sqlite://hammerwork.db": DatabaseSQLite,
		"sqlite::memory:":        DatabaseSQLite,
		"mysql://db/x":           DatabaseMySQL,
		"u:p@tcp(db:3306)/x":     DatabaseMySQL,
	} {
		got, err := ParseDatabaseURL(raw)
		require.NoError(t, err, raw)
		require.Equal(t, want, got, raw)
	}
	_, err := ParseDatabaseURL("")
	require.Error(t, err)
	_, err = ParseDatabaseURL("redis://u:s3cret@db")
	require.ErrorContains(t, err, "unknown scheme")
	require.NotContains(t, err.Error(), "s3cret")
}
