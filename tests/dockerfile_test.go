package tests

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// dockerStage is one FROM ... stage of a Dockerfile: its base image, its name
// and its instructions with continuation lines joined.
type dockerStage struct {
	from, name   string
	instructions []string
}

func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()

	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		ins := strings.TrimSpace(cur.String())
		cur.Reset()
		if ins == "" {
			return
		}
		fields := strings.Fields(ins)
		if strings.EqualFold(fields[0], "FROM") {
			st := dockerStage{from: fields[1]}
			if len(fields) == 4 && strings.EqualFold(fields[2], "AS") {
				st.name = fields[3]
			}
			stages = append(stages, st)
			return
		}
		require.NotEmpty(t, stages, "instruction before the first FROM: %s", ins)
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, ins)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") && cur.Len() == 0 {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	require.NoError(t, sc.Err())
	flush()
	return stages
}

// shellWords splits a command line the way sh does for plain words and
// single- or double-quoted strings, which is all a Dockerfile RUN line here
// uses.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			require.NotContains(t, `;&|$`+"`", string(r), "RUN line needs a real shell: %s", s)
			w.WriteRune(r)
			inWord = true
		}
	}
	require.Zero(t, quote, "unterminated quote in %s", s)
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// The image cannot be built here (no Docker engine), so this runs the
// builder stage's own go build line and checks what the final stage relies
// on: a static binary, at the path it copies, that runs.
func TestDockerfileBuildSteps(t *testing.T) {
	t.Parallel()
	trackSources(t)
	stages := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	require.Len(t, stages, 2, "a builder stage and a final stage")
	builder, final := stages[0], stages[1]
	require.Equal(t, "builder", builder.name)
	require.True(t, strings.HasPrefix(builder.from, "golang:"), "builder image %s", builder.from)

	var buildLine string
	for _, ins := range builder.instructions {
		if strings.HasPrefix(ins, "RUN ") && strings.Contains(ins, "go build") {
			require.Empty(t, buildLine, "one go build line in the builder stage")
			buildLine = strings.TrimPrefix(ins, "RUN ")
		}
	}
	require.NotEmpty(t, buildLine, "the builder stage has no RUN ... go build line")

	words := shellWords(t, buildLine)
	env := map[string]string{}
	for len(words) > 0 && strings.Contains(words[0], "=") {
		k, v, _ := strings.Cut(words[0], "=")
		env[k] = v
		words = words[1:]
	}
	require.Equal(t, "0", env["CGO_ENABLED"], "the build line sets CGO_ENABLED=0")
	require.GreaterOrEqual(t, len(words), 2)
	require.Equal(t, []string{"go", "build"}, words[:2])

	out := filepath.Join(t.TempDir(), "hw-agent")
	var imagePath string
	for i, w := range words {
		if w == "-o" {
			require.Less(t, i+1, len(words), "-o without a path")
			imagePath = words[i+1]
			words[i+1] = out
		}
	}
	require.NotEmpty(t, imagePath, "the build line names its output with -o")
	require.Contains(t, final.instructions, "COPY --from=builder "+imagePath+" /hw-agent",
		"the final stage copies the binary the builder wrote")

	build := exec.Command(words[0], words[1:]...)
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	for k, v := range env {
		build.Env = append(build.Env, k+"="+v)
	}
	msg, err := build.CombinedOutput()
	require.NoError(t, err, "%s\n%s", strings.Join(words, " "), msg)

	bin, err := elf.Open(out)
	require.NoError(t, err)
	defer bin.Close()
	for _, p := range bin.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "a static binary has no program interpreter")
		require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "a static binary has no dynamic section")
	}
	require.Nil(t, bin.Section(".dynamic"))

	version, err := exec.Command(out, "version").CombinedOutput()
	require.NoError(t, err, "hw-agent version: %s", version)
	require.Contains(t, string(version), "hw-agent")

	require.True(t, final.from == "scratch" || strings.HasPrefix(final.from, "gcr.io/distroless/static"),
		"the final stage is a minimal base with no shell or libc: %s", final.from)
	for _, want := range []string{"USER nonroot", "EXPOSE 9090", `ENTRYPOINT ["/hw-agent"]`, `CMD ["run"]`} {
		require.Contains(t, final.instructions, want)
	}
}
