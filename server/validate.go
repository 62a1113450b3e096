package server

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/quotad/quotad/limiter"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// Bounds on request strings: long enough for any real name, short enough that a
// bogus request cannot grow the dedup table or the metrics.
const (
	maxPoolName  = 256
	maxTenant    = 128
	maxRequestID = 128
	maxGrantID   = 64
	maxHeaders   = 64
	maxHeaderLen = 1024
	// maxProviderError bounds a provider's error code: it is quoted in every
	// refusal while the pool fails fast.
	maxProviderError = 256
	// maxRetryAfter bounds a provider's retry-after, as the header parser does: a
	// longer one is no rate limit, and would stop the pool for good.
	maxRetryAfter = 24 * time.Hour
)

// checkString names field and its bad value when s is empty (and required), too long
// or not UTF-8.
func checkString(field, s string, maxLen int, required bool) error {
	switch {
	case required && s == "":
		return fmt.Errorf("%s is required", field)
	case len(s) > maxLen:
		return fmt.Errorf("%s is %d bytes long, more than %d", field, len(s), maxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s %q is not valid UTF-8", field, s)
	}
	return nil
}

func checkAmount(field string, v int64) error {
	if v < 0 || v > limiter.MaxUnits {
		return fmt.Errorf("%s %d must be within [0, %d]", field, v, int64(limiter.MaxUnits))
	}
	return nil
}

func validateAcquire(r *quotadv1.AcquireRequest) error {
	if err := checkString("pool", r.GetPool(), maxPoolName, true); err != nil {
		return err
	}
	if err := checkString("tenant", r.GetTenant(), maxTenant, false); err != nil {
		return err
	}
	if err := checkString("request_id", r.GetRequestId(), maxRequestID, false); err != nil {
		return err
	}
	c := r.GetCost()
	for _, f := range []struct {
		name string
		v    int64
	}{{"cost.requests", c.GetRequests()}, {"cost.input_tokens", c.GetInputTokens()}, {"cost.output_tokens", c.GetOutputTokens()}} {
		if err := checkAmount(f.name, f.v); err != nil {
			return err
		}
	}
	if mw := r.GetMaxWait(); mw != nil {
		if err := mw.CheckValid(); err != nil {
			return fmt.Errorf("max_wait: %w", err)
		}
		if mw.AsDuration() < 0 {
			return fmt.Errorf("max_wait %v must not be negative", mw.AsDuration())
		}
	}
	return nil
}

func validateReport(r *quotadv1.ReportRequest) (limiter.GrantID, error) {
	id, err := validateGrant(r.GetPool(), r.GetGrantId())
	if err != nil {
		return id, err
	}
	u := r.GetUsage()
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"usage.input_tokens", u.GetInputTokens()}, {"usage.output_tokens", u.GetOutputTokens()},
		{"usage.cache_creation_input_tokens", u.GetCacheCreationInputTokens()}, {"usage.cache_read_input_tokens", u.GetCacheReadInputTokens()},
	} {
		if err := checkAmount(f.name, f.v); err != nil {
			return id, err
		}
	}
	if _, ok := quotadv1.Outcome_name[int32(r.GetOutcome())]; !ok {
		return id, fmt.Errorf("outcome %d is not a known outcome", r.GetOutcome())
	}
	if ra := r.GetRetryAfter(); ra != nil {
		if err := ra.CheckValid(); err != nil || ra.AsDuration() < 0 || ra.AsDuration() > maxRetryAfter {
			return id, fmt.Errorf("retry_after %v must be a valid duration within [0, %v]", ra.AsDuration(), maxRetryAfter)
		}
	}
	if err := checkString("provider_error", r.GetProviderError(), maxProviderError, false); err != nil {
		return id, err
	}
	if n := len(r.GetHeaders()); n > maxHeaders {
		return id, fmt.Errorf("headers has %d entries, more than %d", n, maxHeaders)
	}
	for k, v := range r.GetHeaders() {
		if len(k)+len(v) > maxHeaderLen {
			return id, fmt.Errorf("header %.40q is %d bytes long, more than %d", k, len(k)+len(v), maxHeaderLen)
		}
	}
	return id, nil
}

func validateGrant(pool, grantID string) (limiter.GrantID, error) {
	if err := checkString("pool", pool, maxPoolName, true); err != nil {
		return limiter.GrantID{}, err
	}
	if err := checkString("grant_id", grantID, maxGrantID, true); err != nil {
		return limiter.GrantID{}, err
	}
	return limiter.ParseGrantID(grantID)
}

var outcomes = map[quotadv1.Outcome]limiter.Outcome{
	quotadv1.Outcome_OUTCOME_UNSPECIFIED:  limiter.Success,
	quotadv1.Outcome_OUTCOME_SUCCESS:      limiter.Success,
	quotadv1.Outcome_OUTCOME_NOT_SENT:     limiter.NotSent,
	quotadv1.Outcome_OUTCOME_FAILED:       limiter.Failed,
	quotadv1.Outcome_OUTCOME_RATE_LIMITED: limiter.RateLimited,
}
