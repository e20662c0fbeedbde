package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxJSONDepth is the deepest nesting of arrays and objects CheckJSON
// accepts: MariaDB's JSON_VALID rejects 32 levels or more.
const MaxJSONDepth = 31

// PostgreSQL's numeric, which JSONB stores numbers in, holds at most this
// many decimal digits before the point and this many after it.
const (
	maxNumericDigits = 131072
	maxNumericScale  = 16383
)

// CheckJSON reports why b is not a JSON value every backend can store, or
// nil. Go's json.Valid is not enough: MariaDB's JSON_VALID rejects a lone
// UTF-16 surrogate escape ("\ud800", what JavaScript emits for an emoji cut
// in half) and nesting of 32 levels or more, PostgreSQL's JSONB rejects the
// escape \u0000 and numbers beyond its numeric range, and every backend
// rejects invalid UTF-8. Applying the strictest rule everywhere means a
// value accepted on one backend is accepted on all, and one a backend would
// refuse is turned away at the edge with a reason instead of failing a
// whole transaction. The message reads after a field name: "payload ...".
func CheckJSON(b []byte) error {
	// JSON text is UTF-8 (RFC 8259), and json.Valid does not check it.
	if !utf8.Valid(b) || !json.Valid(b) {
		return errors.New("is not valid JSON")
	}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			end, err := checkString(b, i+1)
			if err != nil {
				return err
			}
			i = end
		case c == '[' || c == '{':
			depth++
			if depth > MaxJSONDepth {
				return fmt.Errorf("nests arrays and objects %d levels deep at byte %d; at most %d levels can be stored", depth, i, MaxJSONDepth)
			}
		case c == ']' || c == '}':
			depth--
		case c == '-' || (c >= '0' && c <= '9'):
			end := i
			for end < len(b) && isNumberByte(b[end]) {
				end++
			}
			if err := checkNumber(b[i:end]); err != nil {
				return fmt.Errorf("holds the number %.40q at byte %d, %v", b[i:end], i, err)
			}
			i = end - 1
		}
	}
	return nil
}

// checkString checks the escapes of the string starting at b[i] (after its
// opening quote) and returns the index of its closing quote. b is valid JSON.
func checkString(b []byte, i int) (int, error) {
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i, nil
		case '\\':
			if b[i+1] != 'u' {
				i++
				continue
			}
			r := hex4(b[i+2 : i+6])
			switch {
			case r == 0:
				return 0, fmt.Errorf(`holds the escape \u0000 at byte %d, which PostgreSQL cannot store`, i)
			case r >= 0xDC00 && r <= 0xDFFF:
				return 0, loneSurrogate(r, i)
			case r >= 0xD800 && r <= 0xDBFF:
				if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
					return 0, loneSurrogate(r, i)
				}
				if low := hex4(b[i+8 : i+12]); low < 0xDC00 || low > 0xDFFF {
					return 0, loneSurrogate(r, i)
				}
				i += 11
			default:
				i += 5
			}
		}
	}
	return i, nil
}

func loneSurrogate(r rune, at int) error {
	return fmt.Errorf(`holds a lone UTF-16 surrogate escape \u%04x at byte %d (half of a character, e.g. an emoji cut in two), which MariaDB cannot store`, r, at)
}

// hex4 decodes four hex digits that json.Valid has already checked.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// checkNumber applies PostgreSQL's numeric limits to a JSON number that
// json.Valid has already checked: at most maxNumericDigits digits before
// the point (for a value other than zero) and maxNumericScale after it.
func checkNumber(n []byte) error {
	s := string(n)
	if s[0] == '-' {
		s = s[1:]
	}
	mantissa, exp := s, int64(0)
	for k := 0; k < len(s); k++ {
		if s[k] == 'e' || s[k] == 'E' {
			mantissa = s[:k]
			e, err := strconv.ParseInt(s[k+1:], 10, 32)
			if err != nil {
				return errors.New("whose exponent is out of range")
			}
			exp = e
			break
		}
	}
	intPart, frac := mantissa, ""
	for k := 0; k < len(mantissa); k++ {
		if mantissa[k] == '.' {
			intPart, frac = mantissa[:k], mantissa[k+1:]
			break
		}
	}
	if scale := int64(len(frac)) - exp; scale > maxNumericScale {
		return fmt.Errorf("which needs %d digits after the point; at most %d can be stored", scale, maxNumericScale)
	}
	digits := intPart + frac
	for k := 0; k < len(digits); k++ {
		if digits[k] != '0' {
			if before := int64(len(intPart)-k) + exp; before > maxNumericDigits {
				return fmt.Errorf("which needs %d digits before the point; at most %d can be stored", before, maxNumericDigits)
			}
			break
		}
	}
	return nil
}
