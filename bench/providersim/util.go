package providersim

import (
	"strconv"
	"time"
	"unicode/utf8"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// charTokens is the character estimate of a text: ceil(characters/4), counting
// Unicode code points.
func charTokens(chars int64) int64 { return (chars + 3) / 4 }

func runes(s string) int64 { return int64(utf8.RuneCountInString(s)) }

// ceilTo rounds d up to a multiple of unit.
func ceilTo(d, unit time.Duration) time.Duration {
	if r := d % unit; r != 0 {
		return d + unit - r
	}
	return d
}

// ceilSeconds is d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) int64 { return int64(ceilTo(d, time.Second) / time.Second) }

// words returns output tokens from to from+n-1 of a filler text, one word per
// token.
func words(from, n int64) string {
	filler := [...]string{"lorem ", "ipsum ", "dolor ", "sit ", "amet ", "consectetur ",
		"adipiscing ", "elit ", "sed ", "do ", "eiusmod ", "tempor "}
	b := make([]byte, 0, n*8)
	for i := from; i < from+n; i++ {
		b = append(b, filler[i%int64(len(filler))]...)
	}
	return string(b)
}
