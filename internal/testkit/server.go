package testkit

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
)

// serverURL is the test server named by the environment variable env, or
// def when it is unset.
func serverURL(env, def string) string {
	if u := os.Getenv(env); u != "" {
		return u
	}
	return def
}

// unreachable skips the test because the server of kind at redacted could
// not be reached, or fails it when HW_TEST_REQUIRE_DBS=1, so a CI run
// never passes by testing nothing. The message names the variable to set.
func unreachable(t testing.TB, kind, redacted, env string, err error) {
	t.Helper()
	msg := kind + " not reachable at " + redacted + ": " + err.Error() + "; set " + env
	if os.Getenv("HW_TEST_REQUIRE_DBS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// databaseName is a fresh name (hw_test_<16 hex digits>) for a schema or
// database that one test owns. It is ours, never user input, so it may be
// written into SQL.
func databaseName(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testkit: random database name: %v", err)
	}
	return "hw_test_" + hex.EncodeToString(b)
}
