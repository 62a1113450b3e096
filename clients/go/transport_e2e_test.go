package quotad_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quotad/quotad/bench/providersim"
	quotad "github.com/quotad/quotad/clients/go"
	"github.com/quotad/quotad/internal/testnode"
	quotadv1 "github.com/quotad/quotad/proto/quotad/v1"
)

// e2e is a quotad process, a provider simulator, and a client of both.
type e2e struct {
	sim    *providersim.Server
	simURL string
	client *quotad.Client
	api    quotadv1.QuotaServiceClient // for GetPool
	ctx    context.Context
}

// startE2E runs quotad with the pools of poolsYAML (the body of "pools:") and a
// provider simulator with cfg.
func startE2E(t *testing.T, poolsYAML string, cfg providersim.Config) *e2e {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	file := filepath.Join(t.TempDir(), "quotad.yaml")
	if err := os.WriteFile(file, []byte("pools:\n"+poolsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	node := testnode.Start(t, "--config", file, "--metrics-listen", "")

	sim, err := providersim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	client, err := quotad.Dial(ctx, []string{node.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	conn, err := grpc.NewClient(node.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &e2e{sim: sim, simURL: srv.URL, client: client, api: quotadv1.NewQuotaServiceClient(conn), ctx: ctx}
}

// httpClient returns an HTTP client that reaches the provider through quotad's
// Transport in pool.
func (e *e2e) httpClient(pool string) *http.Client {
	return &http.Client{Transport: quotad.NewTransport(e.client, pool, nil, quotad.WithTenant("e2e"))}
}

func (e *e2e) openAI(pool, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(e.simURL+"/v1/"), option.WithAPIKey(key),
		option.WithHTTPClient(e.httpClient(pool)), option.WithMaxRetries(0))
}

func (e *e2e) pool(t *testing.T, name string) *quotadv1.PoolStatus {
	t.Helper()
	st, err := e.api.GetPool(e.ctx, &quotadv1.GetPoolRequest{Pool: name})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// limit returns the pool's limit on resource.
func limit(t *testing.T, st *quotadv1.PoolStatus, resource string) *quotadv1.LimitStatus {
	t.Helper()
	for _, l := range st.GetLimits() {
		if l.GetResource() == resource {
			return l
		}
	}
	t.Fatalf("pool %s has no %s limit", st.GetPool(), resource)
	return nil
}

// settled checks that the pool holds nothing open any more.
func settled(t *testing.T, st *quotadv1.PoolStatus) {
	t.Helper()
	u := st.GetUnsettled()
	if st.GetInFlight() != 0 || u.GetRequests() != 0 || u.GetInputTokens() != 0 || u.GetOutputTokens() != 0 {
		t.Errorf("pool %s: in flight %d, unsettled %v; want all settled", st.GetPool(), st.GetInFlight(), u)
	}
}

// charged returns what the pool's resource bucket lost between two snapshots.
// The pools of these tests refill about one token per 3 s, so within a second
// that is the charge.
func charged(t *testing.T, before, after *quotadv1.PoolStatus, resource string) int64 {
	t.Helper()
	return limit(t, before, resource).GetLevel() - limit(t, after, resource).GetLevel()
}

// within1 says whether got is want, or one less (a refill tick).
func within1(got, want int64) bool { return got == want || got == want-1 }

// roomy is a simulator whose limits quotad's pools never come near: its headers
// neither clamp quotad's levels nor teach it a lower limit.
func roomy() providersim.Config {
	huge := providersim.Rate{Limit: 1_000_000_000}
	return providersim.Config{
		Default: providersim.Limits{
			Period: time.Minute, Requests: huge, Tokens: huge, InputTokens: huge, OutputTokens: huge,
		},
		QuotaExhaustedKeys: []string{"spent"},
	}
}

// Slow-refilling pools (1M per 744 h: a token per 2.7 s) that start full, so
// that a level drop is the charge.
const sdkPools = `
  - name: openai/sdk
    provider: openai
    limits:
      - {resource: requests, amount: 1000000, per: 744h, initial: full}
      - {resource: tokens, amount: 1000000, per: 744h, initial: full}
  - name: openai/spent
    provider: openai
    limits:
      - {resource: requests, amount: 1000, per: minute, initial: full}
  - name: anthropic/sdk
    provider: anthropic
    limits:
      - {resource: requests, amount: 1000000, per: 744h, initial: full}
      - {resource: input_tokens, amount: 1000000, per: 744h, initial: full}
      - {resource: output_tokens, amount: 1000000, per: 744h, initial: full}
`

func TestTransportOpenAISDK(t *testing.T) {
	e := startE2E(t, sdkPools, roomy())
	client := e.openAI("openai/sdk", "k")
	params := openai.ChatCompletionNewParams{
		Model:     "gpt-4o-mini",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("How many tokens is this?")},
		MaxTokens: openai.Int(40),
	}

	t.Run("completion", func(t *testing.T) {
		before := e.pool(t, "openai/sdk")
		c, err := client.Chat.Completions.New(e.ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		after := e.pool(t, "openai/sdk")
		settled(t, after)
		if got, want := charged(t, before, after, "tokens"), c.Usage.PromptTokens+c.Usage.CompletionTokens; !within1(got, want) {
			t.Errorf("quotad charged %d tokens, the provider used %d", got, want)
		}
		if got := charged(t, before, after, "requests"); got != 1 {
			t.Errorf("quotad charged %d requests", got)
		}
	})

	t.Run("stream", func(t *testing.T) {
		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		before := e.pool(t, "openai/sdk")
		stream := client.Chat.Completions.NewStreaming(e.ctx, p)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		stream.Close()
		after := e.pool(t, "openai/sdk")
		settled(t, after)
		if got, want := charged(t, before, after, "tokens"), acc.Usage.PromptTokens+acc.Usage.CompletionTokens; want == 0 || !within1(got, want) {
			t.Errorf("quotad charged %d tokens, the provider used %d", got, want)
		}
	})

	t.Run("responses stream", func(t *testing.T) {
		before := e.pool(t, "openai/sdk")
		stream := client.Responses.NewStreaming(e.ctx, responses.ResponseNewParams{
			Model:           "gpt-4o-mini",
			Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("How many tokens is this?")},
			MaxOutputTokens: openai.Int(40),
		})
		var usage responses.ResponseUsage
		for stream.Next() {
			if ev := stream.Current(); ev.Type == "response.completed" {
				usage = ev.Response.Usage
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		stream.Close()
		after := e.pool(t, "openai/sdk")
		settled(t, after)
		if got, want := charged(t, before, after, "tokens"), usage.InputTokens+usage.OutputTokens; want == 0 || !within1(got, want) {
			t.Errorf("quotad charged %d tokens, the provider used %d", got, want)
		}
	})

	t.Run("spent quota", func(t *testing.T) {
		spent := e.openAI("openai/spent", "spent")
		_, err := spent.Chat.Completions.New(e.ctx, params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || apiErr.Type != "insufficient_quota" {
			t.Fatalf("first call: %v, want the provider's insufficient_quota", err)
		}
		// quotad now fails the pool fast: the next call never reaches the provider.
		if _, err := spent.Chat.Completions.New(e.ctx, params); !errors.Is(err, quotad.ErrQuotaExhausted) {
			t.Fatalf("second call: %v, want ErrQuotaExhausted", err)
		}
		if st := e.pool(t, "openai/spent"); st.GetQuotaExhausted() == "" {
			t.Errorf("pool status %v: want quota_exhausted set", st)
		}
		if n := e.sim.Stats().Totals.Refused["insufficient_quota"]; n != 1 {
			t.Errorf("the provider saw %d calls on the spent key, want 1", n)
		}
	})

	t.Run("passthrough", func(t *testing.T) {
		before := e.pool(t, "openai/sdk")
		_, err := client.Models.List(e.ctx) // GET /v1/models: the simulator has none
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
			t.Fatalf("list models: %v, want the simulator's 404", err)
		}
		if after := e.pool(t, "openai/sdk"); after.GetNextSequence() != before.GetNextSequence() {
			t.Errorf("a request the transport does not understand took a grant")
		}
	})
}

func TestTransportAnthropicSDK(t *testing.T) {
	e := startE2E(t, sdkPools, roomy())
	// The SDK sends its key as a bearer token; the simulator reads x-api-key.
	client := anthropic.NewClient(anthropicoption.WithBaseURL(e.simURL+"/"), anthropicoption.WithAPIKey("k"), anthropicoption.WithHeader("x-api-key", "k"),
		anthropicoption.WithHTTPClient(e.httpClient("anthropic/sdk")), anthropicoption.WithMaxRetries(0))
	params := anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 40,
		System:    []anthropic.TextBlockParam{{Text: "Be brief."}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("How many tokens is this?"))},
	}
	check := func(t *testing.T, before, after *quotadv1.PoolStatus, usage anthropic.Usage) {
		t.Helper()
		settled(t, after)
		if got, want := charged(t, before, after, "input_tokens"), usage.InputTokens+usage.CacheCreationInputTokens; want == 0 || !within1(got, want) {
			t.Errorf("quotad charged %d input tokens, the provider used %d", got, want)
		}
		if got, want := charged(t, before, after, "output_tokens"), usage.OutputTokens; want == 0 || !within1(got, want) {
			t.Errorf("quotad charged %d output tokens, the provider used %d", got, want)
		}
	}

	t.Run("message", func(t *testing.T) {
		before := e.pool(t, "anthropic/sdk")
		m, err := client.Messages.New(e.ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		check(t, before, e.pool(t, "anthropic/sdk"), m.Usage)
	})

	t.Run("stream", func(t *testing.T) {
		before := e.pool(t, "anthropic/sdk")
		stream := client.Messages.NewStreaming(e.ctx, params)
		var m anthropic.Message
		for stream.Next() {
			if err := m.Accumulate(stream.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		stream.Close()
		check(t, before, e.pool(t, "anthropic/sdk"), m.Usage)
	})
}

// TestTransportRateLimitPausesPool: a 429 with retry-after 2 s (the simulator
// allows one request per 2 s) pauses the pool in quotad for those 2 s, and the
// next call waits for the pause instead of drawing another 429.
func TestTransportRateLimitPausesPool(t *testing.T) {
	cfg := roomy()
	cfg.Pools = map[providersim.Pool]providersim.Limits{{APIKey: "tight"}: {Period: 2 * time.Second, Requests: providersim.Rate{Limit: 1}}}
	e := startE2E(t, `
  - name: openai/tight
    provider: openai
    limits:                 # no requests limit: quotad cannot see the 429 coming
      - {resource: tokens, amount: 1000000, per: minute, initial: full}
`, cfg)
	client := e.openAI("openai/tight", "tight")
	params := openai.ChatCompletionNewParams{
		Model:     "gpt-4o-mini",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
		MaxTokens: openai.Int(5),
	}
	if _, err := client.Chat.Completions.New(e.ctx, params); err != nil {
		t.Fatal(err)
	}
	_, err := client.Chat.Completions.New(e.ctx, params)
	limited := time.Now()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second call: %v, want a 429", err)
	}
	if ra := apiErr.Response.Header.Get("Retry-After"); ra != "2" {
		t.Fatalf("retry-after %q, want 2", ra)
	}
	st := e.pool(t, "openai/tight")
	if p := st.GetPausedFor().AsDuration(); p < 1500*time.Millisecond || p > 2*time.Second {
		t.Fatalf("paused for %v, want about 2s", p)
	}
	settled(t, st)

	// The next call waits out the pause in quotad, then gets through.
	if _, err := client.Chat.Completions.New(e.ctx, params); err != nil {
		t.Fatalf("call after the pause: %v", err)
	}
	if waited := time.Since(limited); waited < 1800*time.Millisecond || waited > 4*time.Second {
		t.Errorf("the call after the 429 went through %v after it, want about 2s", waited)
	}
	if p := e.pool(t, "openai/tight").GetPausedFor().AsDuration(); p != 0 {
		t.Errorf("still paused for %v", p)
	}
	if refused := e.sim.Stats().Totals.RefusedRequests; refused != 1 {
		t.Errorf("the simulator refused %d requests, want 1", refused)
	}
}

// TestTransportFollowsProviderLimit: the pool's config says 2000 tokens per 10 s
// (200k TPM scaled down) while the provider enforces 1500 (150k). Once the first
// responses' headers are reported, quotad takes the provider's limit, and the
// fleet sees no 429 after the first seconds.
func TestTransportFollowsProviderLimit(t *testing.T) {
	const (
		run    = 8 * time.Second
		settle = 3 * time.Second // 429s are tolerated before this
	)
	cfg := providersim.Config{Default: providersim.Limits{
		Period:   10 * time.Second,
		Requests: providersim.Rate{Limit: 100_000},
		Tokens:   providersim.Rate{Limit: 1500},
	}}
	e := startE2E(t, `
  - name: openai/drift
    provider: openai
    limits:
      - {resource: tokens, amount: 2000, per: 10s, initial: full}
`, cfg)
	client := e.openAI("openai/drift", "k")
	params := openai.ChatCompletionNewParams{
		Model:     "gpt-4o-mini",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Write one short sentence about rate limits.")},
		MaxTokens: openai.Int(60),
	}

	start := time.Now()
	var (
		mu                    sync.Mutex
		ok, early429, late429 int
		lateTokens            int64
	)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for time.Since(start) < run {
				c, err := client.Chat.Completions.New(e.ctx, params)
				at := time.Since(start)
				var apiErr *openai.Error
				mu.Lock()
				switch {
				case err == nil:
					ok++
					if at > settle {
						lateTokens += c.Usage.TotalTokens
					}
				case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests:
					if at > settle {
						late429++
					} else {
						early429++
					}
				default:
					t.Errorf("call: %v", err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	t.Logf("%d calls, %d 429s in the first %v, %d after; %d tokens after", ok, early429, settle, late429, lateTokens)
	if late429 != 0 {
		t.Errorf("%d 429s after the first %v", late429, settle)
	}
	tokens := limit(t, e.pool(t, "openai/drift"), "tokens")
	if tokens.GetProviderLimit() != 1500 || tokens.GetProviderLimitFor().AsDuration() <= 0 {
		t.Errorf("tokens limit %v: want the provider's limit of 1500 in force", tokens)
	}
	// The run kept the provider busy: after the first seconds it used most of
	// its 150 tokens per second.
	if perSecond := float64(lateTokens) / (run - settle).Seconds(); perSecond < 100 {
		t.Errorf("%.0f tokens per second after the first %v, want near the provider's 150", perSecond, settle)
	}
}
