package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/agent"
)

// cli holds what every command shares: the streams, the environment and the
// persistent flags.
type cli struct {
	stdout  io.Writer
	stderr  io.Writer
	environ []string

	root        *cobra.Command
	configPath  string
	databaseURL string
	output      string
	logFormat   string
	logLevel    string
}

func newCLI(stdout, stderr io.Writer, environ []string) *cli {
	return &cli{stdout: stdout, stderr: stderr, environ: environ}
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "hw-agent",
		Short: "Job queue and workflow sidecar: leases jobs from a database and POSTs them to your app",
		Long: `hw-agent runs next to your app. It leases ready jobs from PostgreSQL,
MySQL/MariaDB or SQLite, POSTs each job's payload to your app's HTTP handler and
records the outcome.

Try it first with:  hw-agent demo`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			switch c.output {
			case "table", "json":
				return nil
			}
			return fmt.Errorf("--output %q must be table or json", c.output)
		},
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&c.configPath, "config", "", "TOML configuration file (default: $HW_CONFIG, else none)")
	pf.StringVar(&c.databaseURL, "database-url", "", "database URL, overriding database.url (postgres://..., sqlite://path)")
	pf.StringVar(&c.output, "output", "table", "output format: table or json")
	pf.StringVar(&c.logFormat, "log-format", "", "log format: text or json (overrides log.format)")
	pf.StringVar(&c.logLevel, "log-level", "", "log level: debug, info, warn or error (overrides log.level)")

	root.AddCommand(
		c.runCommand(),
		c.migrateCommand(),
		c.versionCommand(),
		c.jobCommand(),
		c.workflowCommand(),
		c.queueCommand(),
		c.cronCommand(),
		c.webhookCommand(),
		c.eventsCommand(),
		c.batchCommand(),
		c.demoCommand(),
		c.benchCommand(),
		c.benchAppCommand(),
	)
	c.root = root
	return root
}

// flagSet reports whether the user gave a persistent flag on the command line.
func (c *cli) flagSet(name string) bool {
	f := c.root.PersistentFlags().Lookup(name)
	return f != nil && f.Changed
}

// loadConfig reads the configuration the way every command does: the file
// named by --config or $HW_CONFIG, then HW_* variables, then the command-line
// flags, which win. Flags are applied as environment overrides so that one
// validation pass checks the final values and names the key at fault.
func (c *cli) loadConfig() (agent.Config, error) {
	path := c.configPath
	environ := make([]string, 0, len(c.environ)+3)
	for _, kv := range c.environ {
		name, val, _ := strings.Cut(kv, "=")
		if name == "HW_CONFIG" {
			if path == "" {
				path = val
			}
			continue
		}
		environ = append(environ, kv)
	}
	if c.flagSet("database-url") {
		environ = append(environ, "HW_DATABASE_URL="+c.databaseURL)
	}
	if c.flagSet("log-format") {
		environ = append(environ, "HW_LOG_FORMAT="+c.logFormat)
	}
	if c.flagSet("log-level") {
		environ = append(environ, "HW_LOG_LEVEL="+c.logLevel)
	}
	cfg, err := agent.LoadConfig(path, environ)
	if err != nil {
		return agent.Config{}, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

// newLogger builds the slog logger log.format and log.level ask for; logs go
// to stderr so stdout stays parseable.
func (c *cli) newLogger(lc agent.LogConfig) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(lc.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(c.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(c.stderr, opts))
}

// jsonOutput reports whether --output json was asked for.
func (c *cli) jsonOutput() bool { return c.output == "json" }

// printJSON writes v as indented JSON to stdout.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON output: %w", err)
	}
	return nil
}
