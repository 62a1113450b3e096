package provider

import (
	"math"
	"strconv"
	"time"

	"github.com/quotad/quotad/limiter"
	"github.com/quotad/quotad/tokens"
)

// azure is Azure OpenAI: OpenAI's admission, models and error codes, but resets
// in its headers are plain seconds ("10"), and a 429 carries retry-after-ms.
type azure struct{}

func (azure) Name() Name { return Azure }

func (azure) Reserve(c Call) limiter.Cost { return openAI{}.Reserve(c) }

func (azure) Encoding(model string) string { return openAIEncoding(model) }

func (azure) CharsPerToken() float64 { return tokens.DefaultCharsPerToken }

func (azure) QuotaSpent(o Outcome) (string, bool) { return openAI{}.QuotaSpent(o) }

func (azure) readHeaders(h map[string]string, _ time.Time, f *Feedback) {
	f.readXRateLimit(h, parseSecondsOrGoDuration)
}

// parseSecondsOrGoDuration reads Azure's resets (plain seconds, "10") or OpenAI's.
func parseSecondsOrGoDuration(v string) (time.Duration, bool) {
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if !(s >= 0 && s <= math.MaxInt64/float64(time.Second)) { // NaN fails too
			return 0, false
		}
		return time.Duration(s * float64(time.Second)), true
	}
	return parseGoDuration(v)
}
