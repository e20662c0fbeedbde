package agent

import (
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
	} {
		got := RedactURL(raw)
		require.Equal(t, want, got, raw)
		require.NotContains(t, got, "s3")
	}
}
