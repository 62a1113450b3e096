package quotad_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	quotad "github.com/quotad/quotad/clients/go"
)

func Example() {
	ctx := context.Background()
	c, err := quotad.Dial(ctx, []string{"quotad-0:7070", "quotad-1:7070"},
		// When quotad is down, allow this process 2 calls per second.
		quotad.WithFailOpen(2, 5))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Acquire before the provider call, Report after it.
	cost := quotad.Cost{Requests: 1, InputTokens: 1200, OutputTokens: 500}
	g, err := c.Acquire(ctx, "openai/prod/gpt-4o-mini", cost,
		quotad.WithTenant("search"), quotad.WithMaxWait(30*time.Second))
	var notGranted *quotad.NotGrantedError
	switch {
	case errors.As(err, &notGranted):
		fmt.Println("busy, retry after", notGranted.RetryAfter)
		return
	case err != nil:
		log.Fatal(err)
	}
	// ... call the provider ...
	if err := g.Report(ctx, quotad.Usage{InputTokens: 1187, OutputTokens: 212}); err != nil {
		log.Print(err)
	}

	// Or let Do acquire, call and report.
	err = c.Do(ctx, "openai/prod/gpt-4o-mini", cost, func(ctx context.Context) (quotad.Usage, error) {
		// ... call the provider; on a 429 return &quotad.RateLimitedError{...},
		// and an error wrapping quotad.ErrNotSent if the call was never sent.
		return quotad.Usage{InputTokens: 1187, OutputTokens: 212}, nil
	})
	if err != nil {
		log.Print(err)
	}
}

func ExampleNewTransport() {
	ctx := context.Background()
	c, err := quotad.Dial(ctx, []string{"quotad-0:7070", "quotad-1:7070"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Every chat completion this client makes waits for a grant in the pool,
	// and reports its usage and the provider's rate-limit headers.
	httpClient := &http.Client{Transport: quotad.NewTransport(c, "openai/prod/gpt-4o-mini", nil,
		quotad.WithTenant("search"), quotad.WithMaxWait(time.Minute))}
	client := openai.NewClient(option.WithHTTPClient(httpClient))
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:     "gpt-4o-mini",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello")},
		MaxTokens: openai.Int(100),
	})
	if err != nil {
		log.Print(err)
	}
}
