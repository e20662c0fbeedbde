package dispatch

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks (https://www.standardwebhooks.com) headers. Using the
// standard rather than a home-made scheme lets apps verify with an existing
// library in their language.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

const secretPrefix = "whsec_"

// SigningKey returns the HMAC key of a signing secret: a "whsec_" secret is
// base64 as Standard Webhooks issues them; anything else is used as raw
// bytes. The agent's configuration check calls it so a malformed secret stops
// start-up instead of failing deliveries.
func SigningKey(secret string) ([]byte, error) {
	if secret == "" {
		return nil, fmt.Errorf("signing secret is empty")
	}
	rest, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("signing secret starts with %q but the rest is not base64: %w", secretPrefix, err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("signing secret %q has no key after the prefix", secretPrefix)
	}
	return key, nil
}

// Signature is the Standard Webhooks "v1,<base64 HMAC-SHA256>" of
// msgID.timestamp.body under key.
func Signature(key []byte, msgID string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// sign adds the Standard Webhooks headers. The message id is the job id, so
// every attempt of one job carries the same webhook-id, as the standard asks
// of a message that is resent after a failure.
func sign(h http.Header, secret, msgID string, now time.Time, body []byte) error {
	key, err := SigningKey(secret)
	if err != nil {
		return err
	}
	ts := now.Unix()
	h.Set(HeaderWebhookID, msgID)
	h.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderWebhookSignature, Signature(key, msgID, ts, body))
	return nil
}
