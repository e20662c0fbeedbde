package tests

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// agentBin is the hw-agent binary built once by TestMain for every test.
var agentBin string

// repoRoot is the module root, where go.mod, the Dockerfile and
// config.example.toml live.
var repoRoot string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := findRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	repoRoot = root

	dir, err := os.MkdirTemp("", "hw-agent-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests: create temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	agentBin = filepath.Join(dir, "hw-agent")
	build := exec.Command("go", "build", "-o", agentBin, "./cmd/hw-agent")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: go build ./cmd/hw-agent: %v\n%s", err, out)
		return 1
	}

	code := m.Run()
	if code == 0 {
		// Child processes and httptest servers are all stopped in t.Cleanup;
		// a goroutine still running here is a leak in the test helpers.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "tests: goroutine leak:", err)
			return 1
		}
	}
	return code
}

// findRepoRoot asks the go tool for the module's go.mod, so the tests run from
// any working directory inside the module.
func findRepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD found no go.mod: run the tests inside the module")
	}
	return filepath.Dir(gomod), nil
}

var trackOnce sync.Once

// binary returns the hw-agent binary built by TestMain.
func binary(t *testing.T) string {
	t.Helper()
	trackSources(t)
	return agentBin
}

// trackSources reads every source file of the module once. go test caches a
// passing result keyed by the files the test process opened, and the builds
// these tests rely on run in child processes it cannot see; without this, a
// change to cmd/ or agent/ would leave "ok (cached)" from an old binary.
func trackSources(t *testing.T) {
	t.Helper()
	trackOnce.Do(func() {
		err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != repoRoot && (strings.HasPrefix(d.Name(), ".") || path == filepath.Join(repoRoot, "tests")) {
					return filepath.SkipDir
				}
				return nil
			}
			switch filepath.Ext(path) {
			case ".go", ".sql", ".mod", ".sum":
			default:
				return nil
			}
			f, err := os.Open(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed since the directory was listed
			}
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(io.Discard, f)
			return err
		})
		if err != nil {
			t.Fatalf("read the module's sources: %v", err)
		}
	})
}
