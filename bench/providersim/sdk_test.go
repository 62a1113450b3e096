package providersim

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/quotad/quotad/internal/clock"
)

func TestOpenAISDK(t *testing.T) {
	cfg := openAIConfig(1000, 100_000)
	cfg.Clock = clock.Real()
	cfg.Output = Output{}
	cfg.Pools = map[Pool]Limits{{APIKey: "tight"}: {Period: 1500 * time.Millisecond, Requests: Rate{Limit: 1}}}
	e := newEnv(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := func(key string, retries int) *openai.Client {
		c := openai.NewClient(option.WithBaseURL(e.url+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(retries))
		return &c
	}
	params := openai.ChatCompletionNewParams{
		Model:     "gpt-4o-mini",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("How many tokens is this?")},
		MaxTokens: openai.Int(40),
	}

	t.Run("completion", func(t *testing.T) {
		c, err := client("k", 0).Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		u := c.Usage
		if u.PromptTokens != 6 || u.CompletionTokens < 10 || u.CompletionTokens > 40 ||
			u.TotalTokens != u.PromptTokens+u.CompletionTokens || c.Choices[0].Message.Content == "" {
			t.Fatalf("completion %+v", c)
		}
	})

	t.Run("stream", func(t *testing.T) {
		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client("k", 0).Chat.Completions.NewStreaming(ctx, p)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if acc.Usage.PromptTokens != 6 || acc.Usage.CompletionTokens == 0 || acc.Choices[0].Message.Content == "" {
			t.Fatalf("accumulated %+v", acc.ChatCompletion)
		}
	})

	t.Run("responses", func(t *testing.T) {
		p := responses.ResponseNewParams{
			Model:           "gpt-4o-mini",
			Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("How many tokens is this?")},
			MaxOutputTokens: openai.Int(40),
		}
		res, err := client("k", 0).Responses.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if res.Usage.InputTokens != 6 || res.Usage.OutputTokens == 0 || res.Output[0].Content[0].Text == "" {
			t.Fatalf("response %s", res.RawJSON())
		}
		stream := client("k", 0).Responses.NewStreaming(ctx, p)
		var text string
		var completed responses.Response
		for stream.Next() {
			switch ev := stream.Current(); ev.Type {
			case "response.output_text.delta":
				text += ev.Delta
			case "response.completed":
				completed = ev.Response
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if text == "" || completed.Usage.InputTokens != 6 || completed.Output[0].Content[0].Text != text {
			t.Fatalf("streamed %q, completed %s", text, completed.RawJSON())
		}
	})

	t.Run("429", func(t *testing.T) {
		noRetry := client("tight", 0)
		if _, err := noRetry.Chat.Completions.New(ctx, params); err != nil {
			t.Fatal(err)
		}
		_, err := noRetry.Chat.Completions.New(ctx, params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests ||
			apiErr.Code != "rate_limit_exceeded" || apiErr.Type != "requests" {
			t.Fatalf("error %v, want a 429 rate_limit_exceeded", err)
		}

		// With retries, the SDK waits for retry-after-ms and gets through on its
		// first retry: the pool then refuses exactly one more request.
		start := time.Now()
		_, err = client("tight", 3).Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatalf("with retries: %v", err)
		}
		if elapsed := time.Since(start); elapsed < 500*time.Millisecond || elapsed > 5*time.Second {
			t.Fatalf("retried success after %v, want about the 1.5s refill", elapsed)
		}
		st := e.sim.Stats().Pools["openai/tight/gpt-4o-mini"].Totals
		if st.AdmittedRequests != 2 || st.Refused["requests"] != 2 {
			t.Fatalf("tight pool stats %+v", st)
		}
	})
}
