package testkit

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/hammerwork-go/hw-agent/store/mysql"
)

// MySQLDefaultURL is used when HW_TEST_MYSQL_URL is unset. The database it
// names must exist, and the user must be allowed to create and drop
// databases.
const MySQLDefaultURL = "mysql://root@127.0.0.1:3306/test"

// MySQLBaseURL returns the MySQL or MariaDB server tests use.
func MySQLBaseURL() string { return serverURL("HW_TEST_MYSQL_URL", MySQLDefaultURL) }

// MySQLURL creates a database of the test's own and returns a URL for it,
// in the form of the base URL. The database is dropped when the test ends.
func MySQLURL(t testing.TB) string {
	t.Helper()
	base := MySQLBaseURL()
	admin := openMySQLBase(t, base)
	defer admin.Close()
	name := databaseName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.DB().ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("testkit: create database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, base, name) })
	u, err := withDatabase(base, name)
	if err != nil {
		t.Fatalf("testkit: %s: %v", mysql.RedactURL(base), err)
	}
	return u
}

// MySQL opens a store on a fresh database (see MySQLURL), migrates it, and
// closes it when the test ends.
func MySQL(t testing.TB) *mysql.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := mysql.Open(ctx, mysql.Config{URL: MySQLURL(t), MaxConns: 8})
	if err != nil {
		t.Fatalf("testkit: open MySQL store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("testkit: migrate MySQL: %v", err)
	}
	return s
}

func openMySQLBase(t testing.TB, base string) *mysql.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := mysql.Open(ctx, mysql.Config{URL: base, MaxConns: 1})
	if err != nil {
		unreachable(t, "MySQL/MariaDB", mysql.RedactURL(base), "HW_TEST_MYSQL_URL", err)
	}
	return s
}

func dropDatabase(t testing.TB, base, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mysql.Open(ctx, mysql.Config{URL: base, MaxConns: 1})
	if err != nil {
		t.Errorf("testkit: drop database %s: %v", name, err)
		return
	}
	defer s.Close()
	if _, err := s.DB().ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		t.Errorf("testkit: drop database %s: %v", name, err)
	}
}

// withDatabase returns base naming database name instead, in base's form.
func withDatabase(base, name string) (string, error) {
	rest, isURL := strings.CutPrefix(base, "mysql://")
	if isURL && !strings.Contains(strings.SplitN(rest, "/", 2)[0], "(") {
		u, err := url.Parse(base)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	cfg, err := driver.ParseDSN(rest)
	if err != nil {
		return "", err
	}
	cfg.DBName = name
	if isURL {
		// The agent's configuration recognises MySQL by this prefix.
		return "mysql://" + cfg.FormatDSN(), nil
	}
	return cfg.FormatDSN(), nil
}
