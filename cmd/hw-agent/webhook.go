package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/agent"
	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// Webhooks are subscribers kept in the database, so every agent sharing it
// delivers them; these commands change them there, without a running agent,
// doing what /v1/webhooks does.

// showDeliveries is how many of the latest deliveries `webhook show` lists.
const showDeliveries = 10

func (c *cli) webhookCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Add, list, show, test and remove webhooks, and page and redeliver their deliveries, directly in the database",
		Long: `A webhook receives every event its filter selects (job, workflow, batch,
schedule and queue changes) as a signed JSON POST, at least once and in order
per job, from whichever agent sharing the database delivers it.`,
	}
	cmd.AddCommand(c.webhookAddCommand(), c.webhookListCommand(), c.webhookShowCommand(), c.webhookRemoveCommand(),
		c.webhookDeliveriesCommand(), c.webhookRedeliverCommand(), c.webhookTestCommand())
	return cmd
}

// webhookFlags are the flags of `webhook add`.
type webhookFlags struct {
	file           string
	url            string
	secrets        []string
	events         []string
	queues         []string
	priorities     []string
	workflows      []string
	includePayload bool
	includeResult  bool
	maxFailures    int
	timeout        time.Duration
}

// definitionFlags are the flags --file replaces.
var definitionFlags = []string{"url", "secret", "event", "queue", "priority", "workflow", "include-payload",
	"include-result", "max-failures", "timeout"}

// def builds the definition from --file or the flags.
func (f webhookFlags) def(cmd *cobra.Command, name string) (webhook.Def, error) {
	if f.file != "" {
		for _, fl := range definitionFlags {
			if cmd.Flags().Changed(fl) {
				return webhook.Def{}, fmt.Errorf("--%s goes in the --file definition, not beside it", fl)
			}
		}
		b, err := os.ReadFile(f.file)
		if err != nil {
			return webhook.Def{}, fmt.Errorf("--file: %w", err)
		}
		def, err := api.DecodeWebhookDef(b)
		if err != nil {
			return webhook.Def{}, fmt.Errorf("--file %s: %w", f.file, err)
		}
		if name != "" && def.Name != "" && def.Name != name {
			return webhook.Def{}, fmt.Errorf("--name %q differs from the name %q in --file %s", name, def.Name, f.file)
		}
		if def.Name == "" {
			def.Name = name
		}
		return def, nil
	}
	if f.timeout < 0 {
		return webhook.Def{}, fmt.Errorf("--timeout %s must not be negative", f.timeout)
	}
	def := webhook.Def{Name: name, URL: f.url, Secrets: f.secrets, IncludePayload: f.includePayload, IncludeResult: f.includeResult,
		Timeout: job.Duration(f.timeout)}
	def.Types, def.Queues, def.WorkflowNames, def.MaxFailures = f.events, f.queues, f.workflows, f.maxFailures
	for _, p := range f.priorities {
		level, err := job.ParsePriority(p)
		if err != nil {
			return webhook.Def{}, fmt.Errorf("--priority: %w", err)
		}
		def.Priorities = append(def.Priorities, int(level))
	}
	return def, nil
}

// webhookFieldFlags names the flag of each field a definition's validation
// reports.
var webhookFieldFlags = map[string]string{
	"name": "--name", "url": "--url", "secrets": "--secret", "events": "--event", "queues": "--queue",
	"priorities": "--priority", "workflow_names": "--workflow", "max_failures": "--max-failures", "timeout": "--timeout",
}

// webhookFlagError names the flag (or the --file key) of a definition's
// problem; other errors are returned as they are.
func webhookFlagError(name string, fromFile bool, err error) error {
	var fe *events.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	field := fe.Field
	if !fromFile {
		key, _, _ := strings.Cut(field, "[")
		if flag, ok := webhookFieldFlags[key]; ok {
			field = flag + " (" + fe.Field + ")"
		}
	}
	prefix := "invalid webhook"
	if name != "" {
		prefix += fmt.Sprintf(" %q", name)
	}
	return fmt.Errorf("%s: %s: %s", prefix, field, fe.Message)
}

// selfAddrs are the API listen addresses of the configuration, which a
// webhook must not point at.
func selfAddrs(cfg agent.Config) []string {
	if cfg.API.Listen == "" || cfg.API.Listen == "off" {
		return nil
	}
	return []string{cfg.API.Listen}
}

func (c *cli) webhookAddCommand() *cobra.Command {
	var (
		f    webhookFlags
		name string
	)
	cmd := &cobra.Command{
		Use:   "add --name NAME --url URL [flags] | --file DEF.json",
		Short: "Create a webhook",
		Long: `Create a webhook. It receives the events that commit from now on; a name that
is taken is refused (remove the webhook first, or PUT /v1/webhooks/{id}). The
definition is the body of POST /v1/webhooks, from the flags or --file.`,
		Example: `  hw-agent webhook add --name billing --url https://billing.example.com/hooks --secret whsec_... --event 'job.*' --queue invoices
  hw-agent webhook add --file billing.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			def, err := f.def(cmd, name)
			if err != nil {
				return webhookFlagError(name, true, err)
			}
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				sub, err := api.CreateWebhook(ctx, st, api.CreateWebhookParams{Def: def, Self: selfAddrs(cfg)})
				if err != nil {
					return webhookFlagError(def.Name, f.file != "", err)
				}
				v, err := api.NewWebhookView(sub)
				if err != nil {
					return err
				}
				if c.jsonOutput() {
					return c.printJSON(v)
				}
				fmt.Fprintf(c.stdout, "webhook %s created (id %s, %s, events %s)\n", v.Name, v.ID, v.URL, eventsColumn(v.Events))
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "the webhook's name, unique (required unless --file names it)")
	fl.StringVar(&f.url, "url", "", "the http or https URL the events are POSTed to (required)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "a Standard Webhooks secret (whsec_...) to sign with; repeat to rotate")
	fl.StringArrayVar(&f.events, "event", nil, "an event type or pattern (job.failed, job.*); repeat; none: every event")
	fl.StringArrayVar(&f.queues, "queue", nil, "only events of this queue; repeat")
	fl.StringArrayVar(&f.priorities, "priority", nil, "only jobs of this priority (background .. critical, or 0..4); repeat")
	fl.StringArrayVar(&f.workflows, "workflow", nil, "only events of workflows of this name; repeat")
	fl.BoolVar(&f.includePayload, "include-payload", false, "send each job's payload")
	fl.BoolVar(&f.includeResult, "include-result", false, "send a completed job's result")
	fl.IntVar(&f.maxFailures, "max-failures", 0, fmt.Sprintf("disable after this many consecutive failed events (default %d)", events.DefaultMaxFailures))
	fl.DurationVar(&f.timeout, "timeout", 0, fmt.Sprintf("bound on one attempt (default %s)", webhook.DefaultTimeout))
	fl.StringVar(&f.file, "file", "", "read the definition (the JSON body of POST /v1/webhooks) from this file")
	return cmd
}

// findWebhook looks a webhook up by id or by name.
func findWebhook(ctx context.Context, st store.Events, ref string) (*store.Subscriber, error) {
	var (
		sub *store.Subscriber
		err error
	)
	if id, perr := uuid.Parse(ref); perr == nil {
		sub, err = st.GetSubscriber(ctx, id)
	} else {
		sub, err = st.GetSubscriberByName(ctx, ref)
	}
	if err == nil && sub.Kind != store.SubscriberWebhook {
		err = fmt.Errorf("%w: %q is a %s subscriber", store.ErrNotFound, ref, sub.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", ref, err)
	}
	return sub, nil
}

func eventsColumn(types []string) string {
	if len(types) == 0 {
		return "*"
	}
	return strings.Join(types, ",")
}

func (c *cli) webhookListCommand() *cobra.Command {
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List webhooks by name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if page.limit < 1 || page.limit > store.MaxListLimit {
				return fmt.Errorf("--limit %d must be between 1 and %d", page.limit, store.MaxListLimit)
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				p, err := st.ListSubscribers(ctx, store.ListSubscribersParams{Kind: store.SubscriberWebhook, Limit: page.limit, Cursor: page.cursor})
				if err != nil {
					return fmt.Errorf("list webhooks: %w", err)
				}
				views := make([]api.WebhookView, len(p.Subscribers))
				for i, sub := range p.Subscribers {
					if views[i], err = api.NewWebhookView(sub); err != nil {
						return err
					}
				}
				if c.jsonOutput() {
					return c.printJSON(map[string]any{"webhooks": views, "next_cursor": p.NextCursor})
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tURL\tEVENTS\tENABLED\tCURSOR\tFAILURES\tLAST DELIVERED")
				for _, v := range views {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", v.Name, v.URL, eventsColumn(v.Events), enabledColumn(v),
						v.Cursor, v.ConsecutiveFailures, orDash(optTime(v.LastDeliveredAt)))
				}
				if err := tw.Flush(); err != nil {
					return fmt.Errorf("write table: %w", err)
				}
				if p.NextCursor != "" {
					fmt.Fprintf(c.stdout, "more webhooks: add --cursor %s\n", p.NextCursor)
				}
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&page.limit, "limit", store.DefaultListLimit, fmt.Sprintf("webhooks per page (at most %d)", store.MaxListLimit))
	fl.StringVar(&page.cursor, "cursor", "", "continue after a previous page (its next cursor)")
	return cmd
}

func enabledColumn(v api.WebhookView) string {
	if v.Enabled {
		return "yes"
	}
	return "no (" + truncate(v.DisabledReason, errorColumnWidth) + ")"
}

// webhookDetail is `webhook show --output json`: the webhook as the API
// shows it and its latest deliveries.
type webhookDetail struct {
	api.WebhookView
	Deliveries []api.DeliveryView `json:"deliveries"`
}

func (c *cli) webhookShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME|ID",
		Short: fmt.Sprintf("Show one webhook: its definition (secrets masked), delivery state and last %d deliveries", showDeliveries),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				sub, err := findWebhook(ctx, st, args[0])
				if err != nil {
					return err
				}
				v, err := api.NewWebhookView(sub)
				if err != nil {
					return err
				}
				page, err := st.ListDeliveries(ctx, store.ListDeliveriesParams{Subscriber: sub.ID, Limit: showDeliveries})
				if err != nil {
					return fmt.Errorf("list deliveries of webhook %q: %w", sub.Name, err)
				}
				d := webhookDetail{WebhookView: v, Deliveries: deliveryViews(page.Deliveries)}
				if c.jsonOutput() {
					return c.printJSON(d)
				}
				c.printWebhook(v)
				fmt.Fprintln(c.stdout, "\nlast deliveries:")
				if len(d.Deliveries) == 0 {
					fmt.Fprintln(c.stdout, "(none yet)")
					return nil
				}
				return c.printDeliveries(d.Deliveries)
			})
		},
	}
}

func (c *cli) printWebhook(v api.WebhookView) {
	line := c.fieldPrinter()
	line("id", v.ID.String())
	line("name", v.Name)
	line("url", v.URL)
	line("secrets", strings.Join(v.Secrets, ", "))
	line("events", eventsColumn(v.Events))
	line("queues", strings.Join(v.Queues, ", "))
	priorities := make([]string, len(v.Priorities))
	for i, p := range v.Priorities {
		priorities[i] = job.Priority(p).String()
	}
	line("priorities", strings.Join(priorities, ", "))
	line("workflow_names", strings.Join(v.WorkflowNames, ", "))
	line("include_payload", yesNo(v.IncludePayload))
	line("include_result", yesNo(v.IncludeResult))
	line("max_attempts", fmt.Sprint(v.MaxAttempts))
	line("retry", fmt.Sprintf("%s doubling to %s", v.RetryInitial, v.RetryMax))
	line("max_failures", fmt.Sprint(v.MaxFailures))
	line("timeout", v.Timeout.String())
	line("concurrency", fmt.Sprint(v.Concurrency))
	line("enabled", yesNo(v.Enabled))
	line("disabled_reason", v.DisabledReason)
	line("disabled_at", optTime(v.DisabledAt))
	line("source", v.Source)
	line("cursor", fmt.Sprint(v.Cursor))
	line("consecutive_failures", fmt.Sprint(v.ConsecutiveFailures))
	line("retry_at", optTime(v.RetryAt))
	line("last_error", v.LastError)
	line("last_delivered_at", optTime(v.LastDeliveredAt))
	line("created_at", formatTime(v.CreatedAt))
	line("updated_at", formatTime(v.UpdatedAt))
}

func deliveryViews(ds []*store.Delivery) []api.DeliveryView {
	out := make([]api.DeliveryView, len(ds))
	for i, d := range ds {
		out[i] = api.NewDeliveryView(d)
	}
	return out
}

func (c *cli) printDeliveries(ds []api.DeliveryView) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tATTEMPTED AT\tEVENT\tSEQ\tATTEMPT\tOUTCOME\tSTATUS\tDURATION\tERROR")
	for _, d := range ds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", d.ID, formatTime(d.AttemptedAt), d.EventType, d.EventSeq, d.Attempt,
			d.Outcome, statusColumn(d.StatusCode), time.Duration(d.DurationMS)*time.Millisecond, orDash(truncate(d.Error, errorColumnWidth)))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func statusColumn(code int) string {
	if code == 0 {
		return "-"
	}
	return fmt.Sprint(code)
}

func (c *cli) webhookRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME|ID",
		Short: "Remove a webhook and its delivery log",
		Long: `Remove the webhook and its delivery log. A webhook from the configuration's
[[webhook]] comes back at the next start-up unless it is removed there too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				sub, err := findWebhook(ctx, st, args[0])
				if err != nil {
					return err
				}
				if err := st.DeleteSubscriber(ctx, sub.ID); err != nil {
					return fmt.Errorf("remove webhook %q: %w", sub.Name, err)
				}
				if c.jsonOutput() {
					return c.printJSON(map[string]string{"removed": sub.Name, "id": sub.ID.String()})
				}
				fmt.Fprintf(c.stdout, "webhook %s removed\n", sub.Name)
				return nil
			})
		},
	}
}

func (c *cli) webhookDeliveriesCommand() *cobra.Command {
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "deliveries NAME|ID",
		Short: "Page a webhook's delivery log, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := page.validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				sub, err := findWebhook(ctx, st, args[0])
				if err != nil {
					return err
				}
				p, err := st.ListDeliveries(ctx, store.ListDeliveriesParams{Subscriber: sub.ID, Limit: page.limit, Cursor: page.cursor})
				if err != nil {
					return fmt.Errorf("list deliveries of webhook %q: %w", sub.Name, err)
				}
				views := deliveryViews(p.Deliveries)
				if c.jsonOutput() {
					return c.printJSON(map[string]any{"deliveries": views, "next_cursor": p.NextCursor})
				}
				if err := c.printDeliveries(views); err != nil {
					return err
				}
				if p.NextCursor != "" {
					fmt.Fprintf(c.stdout, "more deliveries: add --cursor %s\n", p.NextCursor)
				}
				return nil
			})
		},
	}
	page.register(cmd, "deliveries")
	return cmd
}

// withSender opens the store and a webhook sender for a ping or a
// redelivery, the CLI's agent id naming the sender.
func (c *cli) withSender(ctx context.Context, fn func(st store.Store, p api.SendParams) error) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	return c.withStore(ctx, func(st store.Store) error {
		sink := webhook.New(webhook.Config{AgentID: cfg.Agent.ID, Logger: c.newLogger(cfg.Log)})
		return fn(st, api.SendParams{Store: st, Sender: sink, AgentID: cfg.Agent.ID})
	})
}

func (c *cli) printDelivery(name, what string, d *store.Delivery) error {
	v := api.NewDeliveryView(d)
	if c.jsonOutput() {
		return c.printJSON(v)
	}
	fmt.Fprintf(c.stdout, "%s to webhook %s: %s, status %s in %s\n", what, name, v.Outcome, statusColumn(v.StatusCode), d.Duration.Round(time.Millisecond))
	if v.Error != "" {
		fmt.Fprintf(c.stdout, "error: %s\n", oneLine(v.Error))
	}
	if v.Response != "" {
		fmt.Fprintf(c.stdout, "response: %s\n", truncate(v.Response, 200))
	}
	return nil
}

func (c *cli) webhookRedeliverCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "redeliver NAME|ID DELIVERY",
		Short: "Send the event of one delivery again, with the same event id",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			delivery, err := uuid.Parse(args[1])
			if err != nil {
				return fmt.Errorf("delivery ID %q is not a UUID", args[1])
			}
			ctx := cmd.Context()
			return c.withSender(ctx, func(st store.Store, p api.SendParams) error {
				sub, err := findWebhook(ctx, st, args[0])
				if err != nil {
					return err
				}
				d, err := api.RedeliverWebhook(ctx, p, sub, delivery)
				if err != nil {
					return err
				}
				return c.printDelivery(sub.Name, "event "+d.EventType+" "+d.EventID.String()+" redelivered", d)
			})
		},
	}
}

func (c *cli) webhookTestCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "test NAME|ID",
		Short: "Send a webhook.ping event now and show how the receiver answered",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return c.withSender(ctx, func(st store.Store, p api.SendParams) error {
				sub, err := findWebhook(ctx, st, args[0])
				if err != nil {
					return err
				}
				d, err := api.PingWebhook(ctx, p, sub)
				if err != nil {
					return err
				}
				return c.printDelivery(sub.Name, "ping", d)
			})
		},
	}
}
