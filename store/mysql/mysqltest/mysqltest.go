// Package mysqltest gives tests a MySQL or MariaDB database of their own.
//
// The server is named by HW_TEST_MYSQL_URL (default
// mysql://root@127.0.0.1:3306/test); its database must exist and the user
// must be allowed to create and drop databases. When the server cannot be
// reached the test is skipped, or fails when HW_TEST_REQUIRE_DBS=1 (CI).
package mysqltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/hammerwork-go/hw-agent/store/mysql"
)

// DefaultURL is used when HW_TEST_MYSQL_URL is unset.
const DefaultURL = "mysql://root@127.0.0.1:3306/test"

// BaseURL returns the server tests use, from HW_TEST_MYSQL_URL.
func BaseURL() string {
	if u := os.Getenv("HW_TEST_MYSQL_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// URL creates a database with a random name (hw_test_<hex>) and returns a URL
// for it. The database is dropped when the test ends.
func URL(t testing.TB) string {
	t.Helper()
	base := BaseURL()
	admin := openBase(t, base)
	defer admin.Close()
	name := "hw_test_" + randomHex(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// name is ours (hex), never user input.
	if _, err := admin.DB().ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("mysqltest: create database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, base, name) })
	u, err := withDatabase(base, name)
	if err != nil {
		t.Fatalf("mysqltest: %s: %v", mysql.RedactURL(base), err)
	}
	return u
}

// New opens a store on a fresh database (see URL), migrates it, and closes it
// when the test ends.
func New(t testing.TB) *mysql.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := mysql.Open(ctx, mysql.Config{URL: URL(t), MaxConns: 8})
	if err != nil {
		t.Fatalf("mysqltest: open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("mysqltest: migrate: %v", err)
	}
	return s
}

func openBase(t testing.TB, base string) *mysql.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := mysql.Open(ctx, mysql.Config{URL: base, MaxConns: 1})
	if err != nil {
		msg := "MySQL/MariaDB not reachable at " + mysql.RedactURL(base) + ": " + err.Error() + "; set HW_TEST_MYSQL_URL"
		if os.Getenv("HW_TEST_REQUIRE_DBS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return s
}

func dropDatabase(t testing.TB, base, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mysql.Open(ctx, mysql.Config{URL: base, MaxConns: 1})
	if err != nil {
		t.Errorf("mysqltest: drop database %s: %v", name, err)
		return
	}
	defer s.Close()
	if _, err := s.DB().ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		t.Errorf("mysqltest: drop database %s: %v", name, err)
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

func randomHex(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("mysqltest: random database name: %v", err)
	}
	return hex.EncodeToString(b)
}
