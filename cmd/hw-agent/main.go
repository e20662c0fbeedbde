// Command hw-agent is the hammerwork sidecar: it runs the agent, migrates the
// database, demonstrates and benchmarks itself, and administers jobs directly
// in the database without a running agent.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
)

// version is the release this binary was built from, set at build time with
// -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Environ()))
}

// execute runs one command line and returns the process exit code. It takes
// its streams and environment as arguments so tests run the real command tree
// in-process.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	root := newCLI(stdout, stderr, environ).rootCommand()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "hw-agent: %s\n", redactPasswords(err.Error()))
		return 1
	}
	return 0
}

// urlPassword matches the user:password@ part of any URL in a message.
var urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@`)

// redactPasswords hides every URL password in an error message: drivers
// sometimes echo the connection string, and a printed error must never leak
// the database password.
func redactPasswords(msg string) string {
	return urlPassword.ReplaceAllString(msg, "${1}:xxxxx@")
}
