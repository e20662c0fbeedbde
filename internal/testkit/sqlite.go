package testkit

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hammerwork-go/hw-agent/store/sqlite"
)

// SQLiteURL is the URL of a new SQLite file in the test's temporary
// directory; nothing is created until a store opens it.
func SQLiteURL(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "hw.db")
}

// SQLite opens a store on a fresh SQLite file, migrates it, and closes it
// when the test ends.
func SQLite(t testing.TB) *sqlite.Store {
	t.Helper()
	return SQLiteAt(t, SQLiteURL(t))
}

// SQLiteAt opens the SQLite database at url, migrates it, and closes it when
// the test ends. Two calls with one url are two processes sharing a
// database.
func SQLiteAt(t testing.TB, url string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{URL: url})
	if err != nil {
		t.Fatalf("testkit: open SQLite store %s: %v", url, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("testkit: migrate SQLite: %v", err)
	}
	return s
}
