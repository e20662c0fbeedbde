package store

import "strings"

// SafeText makes s storable in a text column of every backend: invalid
// UTF-8 and NUL, which PostgreSQL's text and JSONB refuse (a 500 on a
// failure report, a stuck batch in the agent), become U+FFFD. It is applied
// to error text that comes from outside: an app's response body, or the
// error an app reports through the API.
func SafeText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
