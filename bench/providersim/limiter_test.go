package providersim

import (
	"testing"
	"time"

	"github.com/quotad/quotad/internal/clock"
)

func TestSettlementMayChargeIntoDebt(t *testing.T) {
	cfg := openAIConfig(10, 1000)
	cfg.Clock = clock.NewFake(t0)
	l := newLimiter(&cfg)
	id := poolID{api: apiOpenAI, key: "k", model: "m"}
	tk, d := l.admit(id, usage{input: 100, output: 400})
	if !d.admitted || d.state[resTokens].remaining != 500 {
		t.Fatalf("admit: %+v", d)
	}
	l.settle(tk, usage{input: 300, output: 1000}) // 800 more than reserved
	_, d = l.admit(id, usage{input: 1})
	if d.admitted || d.state[resTokens].remaining != 0 || d.used != 1300 || d.retryAfter != 18060*time.Millisecond {
		t.Fatalf("in debt: %+v", d)
	}
}

func TestAdmissionIsAllOrNothing(t *testing.T) {
	cfg := openAIConfig(1, 600) // 1 request and 600 tokens per minute
	fake := clock.NewFake(t0)
	cfg.Clock = fake
	l := newLimiter(&cfg)
	id := poolID{api: apiOpenAI, key: "k", model: "m"}
	if _, d := l.admit(id, usage{input: 100, output: 400}); !d.admitted {
		t.Fatalf("first: %+v", d)
	}
	_, d := l.admit(id, usage{input: 100, output: 100})
	if d.admitted || d.binding != resRequests || d.retryAfter != time.Minute {
		t.Fatalf("both short: binding %v retry %v, want requests and the longer wait 1m", d.binding, d.retryAfter)
	}
	fake.Advance(10 * time.Second)
	_, d = l.admit(id, usage{input: 100, output: 100})
	if d.admitted || d.retryAfter != 50*time.Second || d.state[resTokens].remaining != 200 {
		t.Fatalf("tokens would fit: %+v; the refusal must debit nothing", d)
	}
}
