package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/store"
)

// applyWebhooks writes the configuration's [[webhook]] entries as config
// subscribers, by name, before the relay starts: each is upserted (an
// unchanged one changes nothing, so a restart neither moves its cursor nor
// re-enables a webhook the relay disabled), and the config webhooks the
// file no longer names are deleted with their delivery logs; webhooks
// created through the API are left alone. Every agent does this at
// start-up; agents started together with one file write the same rows. An
// error stops start-up, naming the entry. Secrets are never logged.
func (a *Agent) applyWebhooks(ctx context.Context) error {
	keep := make([]string, 0, len(a.cfg.Webhooks))
	for i, d := range a.cfg.Webhooks {
		if err := a.applyWebhook(ctx, d); err != nil {
			return fmt.Errorf("webhook[%d] %q: %w", i, d.Name, err)
		}
		keep = append(keep, d.Name)
	}
	deleted, err := a.store.PruneSubscribers(ctx, store.PruneSubscribersParams{
		Kind: store.SubscriberWebhook, Source: store.SourceConfig, Keep: keep,
	})
	if err != nil {
		return fmt.Errorf("delete the webhooks the configuration file no longer names: %w", err)
	}
	for _, name := range deleted {
		a.log.Info("webhook deleted: the configuration file no longer names it", "webhook", name)
	}
	return nil
}

// applyWebhook upserts one entry. The definition is stored as the file
// gives it (defaults are the sink's to apply), so an unchanged entry is
// byte for byte the stored config. A webhook of that name created through
// the API is not taken over: the file would silently replace it.
func (a *Agent) applyWebhook(ctx context.Context, d webhook.Def) error {
	before, err := a.store.GetSubscriberByName(ctx, d.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read the stored subscriber: %w", err)
	case before.Kind != store.SubscriberWebhook || before.Source != store.SourceConfig:
		return fmt.Errorf("the name is taken by a %s subscriber created through the %s; rename the entry or delete that subscriber",
			before.Kind, before.Source)
	}
	config, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode the definition: %w", err)
	}
	sub, created, err := a.store.PutSubscriber(ctx, store.PutSubscriberParams{Def: store.SubscriberDef{
		Name: d.Name, Kind: store.SubscriberWebhook, Source: store.SourceConfig, Config: config,
		IncludePayload: d.IncludePayload, IncludeResult: d.IncludeResult, Enabled: d.IsEnabled(),
	}})
	if err != nil {
		return fmt.Errorf("write the subscriber: %w", err)
	}
	switch {
	case created:
		a.log.Info("webhook created from the configuration file", "webhook", sub.Name, "enabled", sub.Enabled, "cursor", sub.Cursor)
	case before != nil && !sub.UpdatedAt.Equal(before.UpdatedAt):
		a.log.Info("webhook changed by the configuration file; its cursor is kept", "webhook", sub.Name, "enabled", sub.Enabled)
	case !sub.Enabled && d.IsEnabled():
		a.log.Warn("webhook is disabled; change its entry or enable it through the API to deliver again",
			"webhook", sub.Name, "reason", sub.DisabledReason)
	default:
		a.log.Debug("webhook unchanged", "webhook", sub.Name)
	}
	return nil
}
