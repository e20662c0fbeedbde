package store_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/store"
)

// nested wraps v in n arrays or objects, alternating, so both count.
func nested(n int, v string) string {
	var b strings.Builder
	for i := range n {
		if i%2 == 0 {
			b.WriteString(`[`)
		} else {
			b.WriteString(`{"k":`)
		}
	}
	b.WriteString(v)
	for i := n - 1; i >= 0; i-- {
		if i%2 == 0 {
			b.WriteString(`]`)
		} else {
			b.WriteString(`}`)
		}
	}
	return b.String()
}

func TestCheckJSONAppliesTheStrictestBackendRule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string // "" accepts
	}{
		{"object", `{"a":[1,2.5,-3e2,true,null,"x"]}`, ""},
		{"scalar", `"text"`, ""},
		{"surrogate pair", `{"emoji":"\ud83d\ude00"}`, ""},
		{"upper-case surrogate pair", `"\uD83D\uDE00"`, ""},
		{"escapes", `"a\"b\\c\/d\n\t\u00e9"`, ""},
		{"escaped backslash before u", `"\\ud800"`, ""},
		{"surrogate-like text in a key", `{"\\udc00":1}`, ""},
		{"31 levels", nested(store.MaxJSONDepth, `1`), ""},
		{"large but storable numbers", `[1e131071,1e-16383,1.5e131071,0e999999,1e400]`, ""},
		{"brackets in strings do not nest", `"` + strings.Repeat("[", 40) + `"`, ""},

		{"lone high surrogate", `{"x":"\ud800"}`, `lone UTF-16 surrogate escape \ud800 at byte 6`},
		{"high surrogate then text", `"\ud800abcdef"`, `lone UTF-16 surrogate escape \ud800`},
		{"high surrogate then another high", `"\ud800\ud800"`, `lone UTF-16 surrogate escape \ud800`},
		{"high surrogate at the end", `"ab\udbff"`, `lone UTF-16 surrogate escape \udbff`},
		{"lone low surrogate", `"\uDC00"`, `lone UTF-16 surrogate escape \udc00`},
		{"lone surrogate in a key", `{"\ud800":1}`, `lone UTF-16 surrogate escape`},
		{"NUL escape", `{"x":"a\u0000b"}`, `escape \u0000 at byte 7, which PostgreSQL cannot store`},
		{"32 levels", nested(store.MaxJSONDepth+1, `1`), "32 levels deep at byte 91; at most 31"},
		{"too many digits before the point", `{"n":1e131072}`, `number "1e131072" at byte 5, which needs 131073 digits before the point`},
		{"too many digits after the point", `[0.1e-16383]`, "which needs 16384 digits after the point"},
		{"zero with too large a scale", `0e-20000`, "which needs 20000 digits after the point"},
		{"exponent overflow", `1e99999999999`, "exponent is out of range"},
		{"syntax", `{"a":`, "is not valid JSON"},
		{"invalid UTF-8", "\"\xff\"", "is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := store.CheckJSON([]byte(tt.in))
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}
