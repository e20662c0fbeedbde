package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func (c *cli) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded schema migrations to the database (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			st, err := openStore(ctx, cfg.Database)
			if err != nil {
				return err
			}
			defer st.Close()
			applied, err := st.Migrate(ctx)
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			if applied == nil {
				applied = []string{}
			}
			if c.jsonOutput() {
				return c.printJSON(map[string]any{"applied": applied})
			}
			if len(applied) == 0 {
				fmt.Fprintln(c.stdout, "already up to date")
				return nil
			}
			for _, v := range applied {
				fmt.Fprintf(c.stdout, "applied %s\n", v)
			}
			return nil
		},
	}
}

func (c *cli) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of hw-agent and of Go it was built with",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if c.jsonOutput() {
				return c.printJSON(map[string]string{"version": buildVersion(), "go": runtime.Version()})
			}
			fmt.Fprintf(c.stdout, "hw-agent %s (%s %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

// buildVersion is the -ldflags version, else the module version that
// `go install ...@v1.2.3` records, else "dev".
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}
