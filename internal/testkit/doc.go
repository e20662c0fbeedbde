// Package testkit is what the tests of every package share: a buffer that a
// goroutine writes while the test reads it, a bounded wait for asynchronous
// work, and a fresh database per test on each backend (a SQLite file, a
// PostgreSQL schema, a MySQL/MariaDB database).
//
// Only tests import it. It imports the backends, so a backend's in-package
// tests (package sqlite, not sqlite_test) cannot use it.
//
// PostgreSQL is named by HW_TEST_POSTGRES_URL and MySQL/MariaDB by
// HW_TEST_MYSQL_URL (defaults: PostgresDefaultURL, MySQLDefaultURL). When a
// server cannot be reached the test is skipped with a message naming the
// variable to set, or fails when HW_TEST_REQUIRE_DBS=1 (CI).
package testkit
