package tests

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/agent"
)

// The example file sets every key to its default, so loading it must give
// exactly the defaults; the agent id is filled in from the host at load time.
func TestConfigExampleEqualsDefaults(t *testing.T) {
	t.Parallel()
	got, err := agent.LoadConfig(filepath.Join(repoRoot, "config.example.toml"), nil)
	require.NoError(t, err)
	require.NotEmpty(t, got.Agent.ID, "an empty agent.id becomes hostname-pid")
	got.Agent.ID = ""
	require.Equal(t, agent.DefaultConfig(), got)
}

var (
	exampleSection = regexp.MustCompile(`^#?\s*\[\[?\s*([a-z_.]+)\s*\]\]?`)
	exampleKey     = regexp.MustCompile(`^#?\s*([a-z_]+)\s*=`)
)

// Every key of agent.Config appears in the example, set or commented out
// under its section, so a key added to the code without documentation fails.
func TestConfigExampleListsEveryKey(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join(repoRoot, "config.example.toml"))
	require.NoError(t, err)
	defer f.Close()

	sections := map[string]bool{}
	keys := map[string]bool{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := exampleSection.FindStringSubmatch(line); m != nil {
			section = m[1]
			sections[section] = true
			continue
		}
		if m := exampleKey.FindStringSubmatch(line); m != nil && section != "" {
			keys[section+"."+m[1]] = true
		}
	}
	require.NoError(t, sc.Err())

	var missing []string
	// A struct type documented once ([retry]) is only referred to elsewhere
	// ([queue.retry] "with the keys of [retry]"), so its keys are required once.
	documented := map[reflect.Type]bool{}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name := strings.Split(f.Tag.Get("toml"), ",")[0]
			if name == "" {
				continue
			}
			path := name
			if prefix != "" {
				path = prefix + "." + name
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct && ft.NumField() > 0:
				if !sections[path] {
					missing = append(missing, "["+path+"]")
				}
				if !documented[ft] {
					documented[ft] = true
					walk(path, ft)
				}
			case !keys[path]:
				missing = append(missing, path)
			}
		}
	}
	walk("", reflect.TypeOf(agent.Config{}))
	require.Empty(t, missing, "config.example.toml does not document these keys")
}
