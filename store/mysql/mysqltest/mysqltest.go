// Package mysqltest gives tests a MySQL or MariaDB database of their own; it
// is internal/testkit's MySQL fixture under the name the agent's tests still
// import.
package mysqltest

import (
	"testing"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/store/mysql"
)

// URL is testkit.MySQLURL.
func URL(t testing.TB) string {
	t.Helper()
	return testkit.MySQLURL(t)
}

// New is testkit.MySQL.
func New(t testing.TB) *mysql.Store {
	t.Helper()
	return testkit.MySQL(t)
}
