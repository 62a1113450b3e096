package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/quotad/quotad/bench/providersim"
)

// poolFlags collects -pool values: KEY[:MODEL]=RPM,TPM,ITPM,OTPM, where 0 is
// unlimited and missing trailing values are 0. Every pool uses -period.
type poolFlags map[providersim.Pool]providersim.Limits

func (p poolFlags) String() string { return fmt.Sprint(map[providersim.Pool]providersim.Limits(p)) }

func (p poolFlags) Set(v string) error {
	name, rates, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("pool %q: want KEY[:MODEL]=RPM,TPM,ITPM,OTPM", v)
	}
	key, model, _ := strings.Cut(name, ":")
	fields := strings.Split(rates, ",")
	if len(fields) > 4 {
		return fmt.Errorf("pool %q: at most 4 limits (RPM,TPM,ITPM,OTPM)", v)
	}
	var n [4]int64
	for i, f := range fields {
		x, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return fmt.Errorf("pool %q: limit %d: %w", v, i+1, err)
		}
		n[i] = x
	}
	p[providersim.Pool{APIKey: key, Model: model}] = providersim.Limits{
		Requests: providersim.Rate{Limit: n[0]}, Tokens: providersim.Rate{Limit: n[1]},
		InputTokens: providersim.Rate{Limit: n[2]}, OutputTokens: providersim.Rate{Limit: n[3]},
	}
	return nil
}

// withPeriod returns the pools with every period set to period.
func (p poolFlags) withPeriod(period time.Duration) map[providersim.Pool]providersim.Limits {
	out := make(map[providersim.Pool]providersim.Limits, len(p))
	for k, l := range p {
		l.Period = period
		out[k] = l
	}
	return out
}

// keyList collects repeated string flags.
type keyList []string

func (k *keyList) String() string     { return strings.Join(*k, ",") }
func (k *keyList) Set(v string) error { *k = append(*k, v); return nil }
