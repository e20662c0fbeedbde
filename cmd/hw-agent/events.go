package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/store"
)

// Tail timings. The claim is what keeps a tail's subscriber from being
// cleaned up, so it is renewed well before it lapses.
const (
	tailPoll  = 250 * time.Millisecond
	tailClaim = 30 * time.Second
	tailRenew = tailClaim / 3
	// tailRead is how many events one read takes.
	tailRead = 500
)

func (c *cli) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Follow the event outbox",
	}
	cmd.AddCommand(c.eventsTailCommand())
	return cmd
}

// tailFlags are the flags of `events tail`.
type tailFlags struct {
	types   []string
	queues  []string
	fromSeq int64
}

func (f tailFlags) filter() (events.Filter, error) {
	filter := events.Filter{Types: f.types, Queues: f.queues}
	if err := filter.Validate(""); err != nil {
		var fe *events.FieldError
		if errors.As(err, &fe) {
			flag := "--type"
			if strings.HasPrefix(fe.Field, "queues") {
				flag = "--queue"
			}
			return filter, fmt.Errorf("%s: %s", flag, fe.Message)
		}
		return filter, err
	}
	if f.fromSeq < 0 {
		return filter, fmt.Errorf("--from-seq %d must not be negative", f.fromSeq)
	}
	return filter, nil
}

func (c *cli) eventsTailCommand() *cobra.Command {
	var f tailFlags
	cmd := &cobra.Command{
		Use:   "tail [--type TYPE ...] [--queue Q ...] [--from-seq N]",
		Short: "Print events as they commit, like kubectl get -w, until interrupted",
		Long: `Print one line per event (time, seq, type, queue, job id, status, error), or
one JSON object per line with --output json, as the events commit. It works
without a running agent: while it runs it registers a transient subscriber so
that events are written, and removes it on exit. --from-seq starts at an
earlier event the outbox still keeps.`,
		Example: `  hw-agent events tail --type job.failed --type 'workflow.*'
  hw-agent events tail --queue emails --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := f.filter()
			if err != nil {
				return err
			}
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				t := &tail{st: st, filter: filter, log: c.newLogger(cfg.Log), print: c.eventPrinter()}
				return t.run(ctx, f.fromSeq)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.types, "type", nil, "only events of this type or pattern (job.failed, job.*); repeat")
	fl.StringArrayVar(&f.queues, "queue", nil, "only events of this queue; repeat")
	fl.Int64Var(&f.fromSeq, "from-seq", 0, "start at this seq instead of at the events that commit from now on")
	return cmd
}

// eventPrinter writes one event per line: a table row, or JSON lines.
func (c *cli) eventPrinter() func(e events.Event) error {
	if c.jsonOutput() {
		enc := json.NewEncoder(c.stdout)
		return func(e events.Event) error {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("write event: %w", err)
			}
			return nil
		}
	}
	const row = "%-20s  %-8s  %-20s  %-16s  %-36s  %-12s  %s\n"
	header := false
	return func(e events.Event) error {
		if !header {
			fmt.Fprintf(c.stdout, row, "TIME", "SEQ", "TYPE", "QUEUE", "JOB", "STATUS", "ERROR")
			header = true
		}
		jobID := "-"
		if e.JobID != nil {
			jobID = e.JobID.String()
		}
		_, err := fmt.Fprintf(c.stdout, row, formatTime(e.Time), fmt.Sprint(e.Seq), e.Type, orDash(e.Queue), jobID,
			orDash(e.Status), orDash(truncate(e.Error, errorColumnWidth)))
		if err != nil {
			return fmt.Errorf("write event: %w", err)
		}
		return nil
	}
}

// tail follows the outbox through its own transient subscriber. It reads
// by its own cursor, so the subscriber only has to exist for the triggers
// to write; its claim keeps the cleaner from removing it, and acking moves
// its cursor so retention is not held back.
type tail struct {
	st     store.Store
	filter events.Filter
	log    *slog.Logger
	print  func(events.Event) error

	name  string
	sub   *store.Subscriber
	token string
	// stored is the subscriber's cursor as last acked: an ack never moves
	// it back.
	stored  int64
	renewed time.Time
}

func (t *tail) run(ctx context.Context, fromSeq int64) error {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return fmt.Errorf("name the tail: %w", err)
	}
	t.name = fmt.Sprintf("tail-%s-%d-%s", host, os.Getpid(), hex.EncodeToString(suffix))
	if err := t.register(ctx); err != nil {
		return err
	}
	defer t.unregister()
	after := t.sub.Cursor
	if fromSeq > 0 {
		after = fromSeq - 1
	}
	tick := time.NewTicker(tailPoll)
	defer tick.Stop()
	for {
		if after, err = t.pass(ctx, after); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// register creates the subscriber; a new one's cursor is the latest seq.
func (t *tail) register(ctx context.Context) error {
	config, err := json.Marshal(t.filter)
	if err != nil {
		return fmt.Errorf("encode the tail's filter: %w", err)
	}
	sub, _, err := t.st.PutSubscriber(ctx, store.PutSubscriberParams{Def: store.SubscriberDef{Name: t.name,
		Kind: store.SubscriberTail, Source: store.SourceAPI, Config: config, Enabled: true}, CreateOnly: true})
	if err != nil {
		return fmt.Errorf("register tail subscriber %q: %w", t.name, err)
	}
	t.sub, t.token, t.stored = sub, "", sub.Cursor
	t.log.Debug("tail subscriber registered", "subscriber", t.name, "cursor", sub.Cursor)
	return t.claim(ctx)
}

// unregister deletes the subscriber, even when ctx has ended (Ctrl-C).
func (t *tail) unregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.st.DeleteSubscriber(ctx, t.sub.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.log.Warn("remove tail subscriber; the cleaner removes it once its claim lapses", "subscriber", t.name, "err", err)
	}
}

// pass sequences what committed, prints the events after the cursor and
// acks them; it returns the new cursor.
func (t *tail) pass(ctx context.Context, after int64) (int64, error) {
	if _, err := t.st.SequenceEvents(ctx, store.SequenceEventsParams{}); err != nil {
		return after, fmt.Errorf("sequence events: %w", err)
	}
	if err := t.claim(ctx); err != nil {
		return after, err
	}
	for {
		recs, err := t.st.ReadEvents(ctx, store.ReadEventsParams{AfterSeq: after, Limit: tailRead})
		if err != nil {
			return after, fmt.Errorf("read events after %d: %w", after, err)
		}
		for _, r := range recs {
			e := events.FromRecord(r)
			after = r.Seq
			if !t.filter.Match(e) {
				continue
			}
			if err := t.print(e); err != nil {
				return after, err
			}
		}
		if len(recs) < tailRead {
			break
		}
	}
	return after, t.ack(ctx, after)
}

// claim takes the subscriber's claim while none is held (from the start,
// and again after one was lost). A subscriber the cleaner removed (the
// process was stopped past its claim and the grace) is registered again.
func (t *tail) claim(ctx context.Context) error {
	if t.token != "" {
		return nil
	}
	subs, err := t.st.ClaimSubscribers(ctx, store.ClaimSubscribersParams{AgentID: t.name, Names: []string{t.name}, Limit: 1, Duration: tailClaim})
	if err != nil {
		return fmt.Errorf("claim tail subscriber %q: %w", t.name, err)
	}
	if len(subs) == 1 {
		t.token, t.stored, t.renewed = subs[0].ClaimToken, subs[0].Cursor, time.Now()
		return nil
	}
	if _, err := t.st.GetSubscriber(ctx, t.sub.ID); errors.Is(err, store.ErrNotFound) {
		t.log.Warn("tail subscriber was removed (an agent's cleanup took it for abandoned); registering it again, events committed in between may be missing",
			"subscriber", t.name)
		return t.register(ctx)
	} else if err != nil {
		return fmt.Errorf("get tail subscriber %q: %w", t.name, err)
	}
	return nil
}

// ack moves the stored cursor up to after and renews the claim, when it
// moved or the claim is due for renewal. A claim lost to expiry is taken
// again at the next pass.
func (t *tail) ack(ctx context.Context, after int64) error {
	if t.token == "" || after <= t.stored && time.Since(t.renewed) < tailRenew {
		return nil
	}
	cursor := max(after, t.stored)
	err := t.st.AckEvents(ctx, store.AckEventsParams{Subscriber: t.sub.ID, AgentID: t.name, ClaimToken: t.token,
		State: store.SubscriberState{Cursor: cursor}, Extend: tailClaim})
	switch {
	case errors.Is(err, store.ErrStaleLease), errors.Is(err, store.ErrNotFound):
		t.token = ""
		return nil
	case err != nil:
		return fmt.Errorf("ack tail subscriber %q at %d: %w", t.name, cursor, err)
	}
	t.stored, t.renewed = cursor, time.Now()
	return nil
}
