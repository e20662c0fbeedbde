// Package webhook is the webhook sink: each outbox event POSTed as JSON to
// a subscriber's URL, signed with Standard Webhooks headers, its every
// attempt reported to the relay for the delivery log.
package webhook

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/job"
)

// Definition defaults.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 16
	// MaxNameLength bounds a webhook's name (the metrics label and the
	// subscriber's key).
	MaxNameLength = 128
)

// Def is a webhook subscription as POST /v1/webhooks and [[webhook]] give
// it. It is stored whole as the subscriber's config.
type Def struct {
	Name string `json:"name" toml:"name"`
	URL  string `json:"url" toml:"url"`
	// Secrets are Standard Webhooks secrets ("whsec_" + base64). Every
	// delivery is signed with each, so a receiver that knows any of them
	// verifies it: add the new secret, move receivers over, drop the old.
	// None: deliveries are unsigned.
	Secrets []string `json:"secrets,omitempty" toml:"secrets"`
	events.Policy
	IncludePayload bool `json:"include_payload,omitempty" toml:"include_payload"`
	IncludeResult  bool `json:"include_result,omitempty" toml:"include_result"`
	// Timeout bounds one attempt. Zero: DefaultTimeout.
	Timeout job.Duration `json:"timeout,omitempty" toml:"timeout"`
	// Concurrency bounds the requests in flight at once (events of one job
	// always go one after another). Zero: DefaultConcurrency.
	Concurrency int `json:"concurrency,omitempty" toml:"concurrency"`
	// Enabled: nil means true.
	Enabled *bool `json:"enabled,omitempty" toml:"enabled"`
}

// IsEnabled is Enabled with its default.
func (d Def) IsEnabled() bool { return d.Enabled == nil || *d.Enabled }

// WithDefaults fills zero fields with the defaults.
func (d Def) WithDefaults() Def {
	d.Policy = d.Policy.WithDefaults()
	if d.Timeout == 0 {
		d.Timeout = job.Duration(DefaultTimeout)
	}
	if d.Concurrency == 0 {
		d.Concurrency = DefaultConcurrency
	}
	return d
}

// ValidateParams are what Validate checks a definition against.
type ValidateParams struct {
	// Prefix is put before each field's name: "webhook[2]." in the
	// configuration, "" in the API.
	Prefix string
	// Self are the agent's own API listen addresses (host:port): a URL
	// that resolves to one is refused, so a webhook cannot call the agent
	// that delivers it.
	Self []string
	// Resolver looks up the URL's host; nil is net.DefaultResolver.
	Resolver *net.Resolver
}

// Validate checks every field and returns the first problem as an
// *events.FieldError (wrapping store.ErrInvalid) naming it.
func (d Def) Validate(ctx context.Context, p ValidateParams) error {
	bad := func(field, format string, args ...any) error {
		return &events.FieldError{Field: p.Prefix + field, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case d.Name == "":
		return bad("name", "is required")
	case len(d.Name) > MaxNameLength:
		return bad("name", "is %d bytes; at most %d", len(d.Name), MaxNameLength)
	case strings.ContainsFunc(d.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return bad("name", "contains a control character")
	}
	u, err := url.Parse(d.URL)
	switch {
	case d.URL == "":
		return bad("url", "is required")
	case err != nil:
		return bad("url", "%q is not a URL: %v", d.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("url", "%q is not an http or https URL", d.URL)
	case u.Host == "" || u.Hostname() == "":
		return bad("url", "%q has no host", d.URL)
	case u.User != nil:
		return bad("url", "%q carries credentials; use secrets to authenticate deliveries", d.URL)
	}
	for i, s := range d.Secrets {
		if !strings.HasPrefix(s, "whsec_") {
			return bad(fmt.Sprintf("secrets[%d]", i), "is not a Standard Webhooks secret (whsec_ followed by base64)")
		}
		if _, err := dispatch.SigningKey(s); err != nil {
			return bad(fmt.Sprintf("secrets[%d]", i), "%v", err)
		}
	}
	if err := d.Policy.Validate(p.Prefix); err != nil {
		return err
	}
	switch {
	case d.Concurrency < 0:
		return bad("concurrency", "must not be negative")
	case d.Timeout < 0:
		return bad("timeout", "must not be negative")
	}
	if resolvesToSelf(ctx, u, p) {
		return bad("url", "%q resolves to this agent's own API listener; a webhook must not call the agent that delivers it", d.URL)
	}
	return nil
}

// resolvesToSelf reports whether u's host and port are one of p.Self's
// addresses. A listener on an unspecified address (0.0.0.0, [::]) listens
// on every local address, so loopback and the host's own addresses count.
func resolvesToSelf(ctx context.Context, u *url.URL, p ValidateParams) bool {
	if len(p.Self) == 0 {
		return false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	targets, err := r.LookupIPAddr(ctx, u.Hostname())
	if err != nil {
		// A host that does not resolve now is not this agent; refusing it
		// would let a DNS outage stop an agent with [[webhook]] entries
		// from starting. Its deliveries fail and are retried instead.
		return false
	}
	for _, self := range p.Self {
		host, selfPort, err := net.SplitHostPort(self)
		if err != nil || selfPort != port {
			continue
		}
		if slices.ContainsFunc(targets, func(t net.IPAddr) bool { return listensOn(host, t.IP) }) {
			return true
		}
	}
	return false
}

// listensOn reports whether a listener on host accepts connections to ip.
func listensOn(host string, ip net.IP) bool {
	selfIP := net.ParseIP(host)
	switch {
	case host == "" || selfIP != nil && selfIP.IsUnspecified():
		return ip.IsLoopback() || slices.ContainsFunc(localIPs(), ip.Equal)
	case host == "localhost":
		return ip.IsLoopback()
	case selfIP != nil:
		return selfIP.Equal(ip) || selfIP.IsLoopback() && ip.IsLoopback()
	}
	return false
}

// localIPs are the host's interface addresses.
func localIPs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP)
		}
	}
	return out
}
